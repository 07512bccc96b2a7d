# Fine-tune GPT-2 on a small text, as nanoGPT's config/finetune_shakespeare.py does.
# Data: gpttui prepare input.txt --out data/shakespeare   (GPT-2 tokens)
# init_from: 'gpt2' .. 'gpt2-xl' from the Hugging Face cache, or a directory holding
# model.safetensors and config.json (--init_from=DIR).
out_dir = 'out-finetune'
eval_interval = 5
eval_iters = 40
wandb_log = False
dataset = 'shakespeare'
init_from = 'gpt2'
always_save_checkpoint = False

# 1 x 32 x 1024 = 32K tokens per iteration
batch_size = 1
gradient_accumulation_steps = 32
max_iters = 20
learning_rate = 3e-5
decay_lr = False
