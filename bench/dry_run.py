"""The dry run and the encrypted import, next to the import (``bench.list_import --dry-run``).

Interleaved round by round, each a child process on the same sshd, PostgreSQL and
Prefect server as :mod:`bench.list_import`:

- **import (base)**: the import of a fresh list by another tree (``--base TREE``,
  e.g. ``git archive <commit> | tar -x -C TREE``), the A of the A/B;
- **import**: the same by this tree;
- **dry-run re-import** and **re-import**: the file again over the loaded list
  (``force``: every record unchanged), dry, then for real;
- **dry run (new list)**: the file into a list that does not exist;
- **encrypted import**: the same file encrypted to a key made here (OpenPGP,
  ``.pgp``), decrypted as it is read with the key from a ``Secret`` block.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common

KEY_BLOCK = "bench-pgp-key"
_PASSPHRASE = "bench passphrase 2026"

Params = Callable[[int, str], dict[str, Any]]


def encrypt_for_bench(plain: Path, target: Path) -> None:
    """Encrypt ``plain`` to a key pair made now; save the private key as a Secret block."""
    import gnupg
    from prefect.blocks.system import Secret

    home = Path(tempfile.mkdtemp(prefix="cctasks-bench-gpg-"))
    try:
        gpg = gnupg.GPG(gnupghome=str(home))
        spec = gpg.gen_key_input(
            name_real="Bench",
            name_email="bench@example.test",
            key_type="EDDSA",
            key_curve="ed25519",
            subkey_type="ECDH",
            subkey_curve="cv25519",
            passphrase=_PASSPHRASE,
        )
        key = gpg.gen_key(spec)
        with plain.open("rb") as handle:
            done = gpg.encrypt_file(
                handle, [key.fingerprint], output=str(target), armor=False, always_trust=True
            )
        if not done.ok:
            raise RuntimeError(f"gpg could not encrypt the bench file: {done.status}")
        armored = gpg.export_keys(key.fingerprint, secret=True, passphrase=_PASSPHRASE)
        Secret(value={"key": armored, "passphrase": _PASSPHRASE}).save(KEY_BLOCK, overwrite=True)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)


def measure(
    rows: int,
    runs: int,
    env: dict[str, str],
    params: Params,
    drop_list: Callable[[str], None],
    base: Path | None,
    report: Callable[[str], None],
) -> dict[str, list[float]]:
    """Interleave the variants ``runs`` times; return each one's wall times."""
    name = f"Bench dry {rows}"
    plain = params(rows, name)
    encrypted = dict(plain, source=plain["source"] + ".pgp", decrypt_with=KEY_BLOCK)
    variants: list[tuple[str, dict[str, Any], bool, Path | None]] = [
        # (label, parameters, drop the list first, tree)
        ("import", plain, True, None),
        ("dry-run re-import", dict(plain, dry_run=True), False, None),
        ("re-import", plain, False, None),
        ("dry run (new list)", dict(plain, dry_run=True), True, None),
        ("encrypted import", encrypted, True, None),
    ]
    if base is not None:
        variants.insert(0, ("import (base)", plain, True, base))
    times: dict[str, list[float]] = {label: [] for label, *_ in variants}
    for run in range(runs):
        # The two trees' imports swap places every other round, so that neither
        # always runs on a warmer machine; the rest need the list as "import" left it.
        order = list(variants)
        if run % 2 and base is not None:
            order[0], order[1] = order[1], order[0]
        for label, parameters, fresh, tree in order:
            if fresh:
                drop_list(name)
            figures = common.run_flow("bench.list_import", parameters, env, cwd=tree)
            times[label].append(figures["seconds"])
            outcome = figures["outcome"]
            report(
                f"  run {run + 1}: {label:<20} {figures['seconds']:.2f} s, "
                f"peak RSS {figures['peak_mb']:.0f} MB ({outcome['loaded']:,} loaded, "
                f"{outcome['unchanged']:,} unchanged, step {outcome['step']!r})"
            )
    return times


def print_results(times: dict[str, list[float]], rows: int, report: Callable[[str], None]) -> None:
    """Medians, and the ratios that matter: dry vs real, encrypted vs plain, this vs base."""
    med = {label: statistics.median(values) for label, values in times.items()}
    report(f"\n=== dry run and encrypted import, {rows:,} rows (medians) ===")
    for label, values in times.items():
        report(f"{label:<22} {common.fmt(values)}")
    report(f"dry run (new list) / import:        {med['dry run (new list)'] / med['import']:.2f}x")
    report(
        f"dry-run re-import / re-import:      {med['dry-run re-import'] / med['re-import']:.2f}x"
    )
    report(f"encrypted import / import:          {med['encrypted import'] / med['import']:.2f}x")
    if "import (base)" in med:
        report(f"import, this tree / base tree:      {med['import'] / med['import (base)']:.2f}x")
