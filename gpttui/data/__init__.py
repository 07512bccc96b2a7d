"""Training data: prepare token files, read sources, tokenizers. No torch: `gpttui prepare` never pays its import."""
