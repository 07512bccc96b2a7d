# Evaluate OpenAI's GPT-2 (124M) on your prepared data, as nanoGPT's config/eval_gpt2.py does.
# The weights come from the Hugging Face cache (needs the [safetensors] extra and the files cached).
batch_size = 8
eval_iters = 500
eval_only = True
wandb_log = False
init_from = 'gpt2'
dataset = 'fineweb'
out_dir = 'out-eval-gpt2'
