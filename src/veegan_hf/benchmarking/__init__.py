"""What the scripts in `benchmarks/` share: provenance (commit, CPU, device, threads), run records that let a long
table resume, parallel training runs, the bare PyTorch reference loop that speed is measured against, and memory and
latency probes. The scripts import only the package; this subpackage is where their common code lives."""
