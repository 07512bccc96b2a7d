# A small GPT-2-vocabulary model on FineWeb, sized for one 12 GB card (an RTX 4070).
# Data first: gpttui prepare 'fineweb/**/*.parquet' --out data/fineweb
# Then: gpttui launch config/train_fineweb.py   (or gpttui train ... for nanoGPT's log lines)

out_dir = 'out-fineweb'
dataset = 'fineweb'
eval_interval = 500
eval_iters = 100
log_interval = 10
always_save_checkpoint = True

# 6 x 384: ~30M parameters; 12 x 1024 x 8 = ~98K tokens per iteration
n_layer = 6
n_head = 6
n_embd = 384
block_size = 1024
batch_size = 12
gradient_accumulation_steps = 8
dropout = 0.0

learning_rate = 1e-3
max_iters = 10000
lr_decay_iters = 10000
min_lr = 1e-4
warmup_iters = 200
weight_decay = 0.1
beta2 = 0.95
