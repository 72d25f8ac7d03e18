"""Train VEEGAN with Accelerate: `accelerate launch training/train.py [--config NAME] [--flag value ...]`.

A thin entry: arguments -> `veegan_hf.training.parse_config` -> `train` -> `save_pretrained` / `push_to_hub`. The
training library lives in the package (`veegan_hf.training`), so `accelerate launch -m veegan_hf.train` does the same
after a plain `pip install veegan-hf`. `--help` lists every option.
"""

from veegan_hf.train import exit_process, main

if __name__ == "__main__":
    exit_process(main())
