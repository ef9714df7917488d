"""Post-training quantisation and the model artifact (reference.md section 4).

calibration.py  training-shard batches for the Hessians (run inside the training budget)
gptq.py         Hessians through forward hooks; GPTQ (canonical and the seed's pr1004 variant)
rtn.py          per-row scales, round-to-nearest, dequantisation, int8 table quantisation
prune.py        magnitude-pruning keep-masks and the zero fraction of exported integers
pack.py         state dict -> QuantizedState (int5 GPTQ / int8 tables / fp16 / raw) and back
artifact.py     container, zstd-22 vs lzma-9 compression, code + model bytes vs 16,000,000
fit.py          size-targeted pruning: zero the cheapest |q|=1 int5 entries until code + blob fit
triton_dequant.py  fused q * scale dequantisation kernel (CUDA) with a torch fallback
"""
