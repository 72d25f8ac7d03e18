"""The client side of the Hub stand-in's tests, run in a fresh process (`python tests/hub_client.py SPEC.json`), where
`HF_HUB_OFFLINE` and `HF_ENDPOINT` from the environment still take effect: it loads each repo of the spec with
`VEEGAN.from_pretrained`, samples with a fixed seed, and writes what it got, or pushes a saved pipeline with
`push_to_hub` (see `_client_main`)."""

import json
import sys
from pathlib import Path


def _client_main(spec_path: str) -> None:
    """Runs the spec's `calls` in order and writes, to the spec's `out_dir`, `results.json` (by name: the error, or
    what the call gave) and, for each load, `NAME.pt` (samples from seed 0 and the three state dicts).

    A call `{"name", "repo_id", "kwargs"}` loads with `VEEGAN.from_pretrained` (result: the card metadata); a call
    `{"name", "push_from", "repo_id", "kwargs"}` loads the local folder `push_from` and pushes it with
    `push_to_hub(repo_id, **kwargs)` (result: the commit URL it returns)."""
    spec = json.loads(Path(spec_path).read_text())
    out_dir = Path(spec["out_dir"])

    import torch

    torch.set_num_threads(1)  # as conftest does in the parent: same kernels, same bits

    from veegan_hf import VEEGAN

    results = {}
    for call in spec["calls"]:
        try:
            if "push_from" in call:
                pipe = VEEGAN.from_pretrained(call["push_from"])
                commit_url = pipe.push_to_hub(call["repo_id"], **call.get("kwargs", {}))
                results[call["name"]] = {"error": None, "commit_url": commit_url}
                continue
            pipe = VEEGAN.from_pretrained(call["repo_id"], **call.get("kwargs", {}))
        except Exception as err:
            results[call["name"]] = {
                "error": type(err).__name__,
                "mro": [c.__name__ for c in type(err).__mro__],
                "message": str(err),
                "cause": type(err.__cause__).__name__ if err.__cause__ is not None else None,
            }
            continue
        samples = pipe(batch_size=4, generator=torch.Generator().manual_seed(0), output_type="pt").samples
        networks = {
            "generator": pipe.generator,
            "reconstructor": pipe.reconstructor,
            "discriminator": pipe.discriminator,
        }
        state = {name: net.state_dict() for name, net in networks.items() if net is not None}
        torch.save({"samples": samples, "state": state}, out_dir / f"{call['name']}.pt")
        results[call["name"]] = {"error": None, "card_metadata": pipe.card_metadata}
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    _client_main(sys.argv[1])
