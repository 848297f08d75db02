// Compiles the shared precompiled header (<torch/torch.h>) that other targets reuse.
