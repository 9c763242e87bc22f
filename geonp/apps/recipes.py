"""Recipes: YAML files that run a whole workflow (``geonp run recipes/<name>.yaml``).

A recipe names its ``flow`` and gives that flow's options; relative paths
resolve against the recipe's own folder, and ``${GEONP_DATA}`` (default: the
``shared/data`` folder beside the repository) against the data root, so a
recipe runs the same from any working directory. Unknown keys are errors,
never silently ignored.

    flow: downscale                   # pretrain | fit | downscale | prevalence | epidemic
    data: ${GEONP_DATA}/era5_t2m_uk
    output: runs/downscale-uk
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from pathlib import Path

from geonp.errors import ConfigError

FLOWS = {
    "pretrain": "geonp.apps.flows.pretrain",
    "downscale": "geonp.apps.flows.downscale",
    "prevalence": "geonp.apps.flows.prevalence",
    "epidemic": "geonp.apps.flows.epidemic",
    "fit": "geonp.apps.flows.fit",
}


def data_root() -> Path:
    """Where the shared sample data lives: ``$GEONP_DATA``, else ``shared/data`` beside the checkout."""
    if os.environ.get("GEONP_DATA"):
        return Path(os.environ["GEONP_DATA"]).expanduser()
    here = Path(__file__).resolve().parents[2]
    for candidate in (here.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return here.parent / "shared" / "data"


def _expand(value, base: Path):
    if isinstance(value, dict):
        return {k: _expand(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, base) for v in value]
    if isinstance(value, str) and "${GEONP_DATA}" in value:
        return value.replace("${GEONP_DATA}", str(data_root()))
    return value


def load_recipe(path) -> dict:
    """Read and check a recipe: a mapping with a known ``flow``; data paths expanded."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {str(path)!r} not found; recipes live in recipes/ (e.g. recipes/downscale-uk.yaml).")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}).") from err
    if not isinstance(recipe, dict) or "flow" not in recipe:
        raise ConfigError(f"{path}: a recipe is a mapping with a 'flow' key ({sorted(FLOWS)}).")
    if recipe["flow"] not in FLOWS:
        raise ConfigError(f"{path}: unknown flow {recipe['flow']!r}; available: {sorted(FLOWS)}.")
    unexpanded = re.findall(r"\$\{(\w+)\}", str(recipe))
    unknown = sorted(set(unexpanded) - {"GEONP_DATA"})
    if unknown:
        raise ConfigError(f"{path}: unknown variable(s) {unknown}; only ${{GEONP_DATA}} is expanded.")
    recipe = _expand(recipe, path.parent)
    recipe["_base"] = str(path.parent.resolve())
    return recipe


def run_recipe(path, overrides: dict | None = None) -> dict:
    """Run the flow a recipe names, with its options (plus ``overrides``); returns the flow's report."""
    recipe = load_recipe(path)
    recipe.update(overrides or {})
    module = importlib.import_module(FLOWS[recipe.pop("flow")])
    base = Path(recipe.pop("_base"))
    accepted = set(inspect.signature(module.run).parameters) - {"base"}
    unknown = sorted(set(recipe) - accepted)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown} for this flow; accepted: {sorted(accepted)}.")
    return module.run(base=base, **recipe)


def resolve(base: Path, path) -> Path:
    """A recipe path: absolute as given, relative to the recipe's folder otherwise."""
    p = Path(str(path)).expanduser()
    return p if p.is_absolute() else (base / p)


def resolve_input(base: Path, path, what: str) -> Path:
    """A recipe's input file, resolved like :func:`resolve`; a clear error when it is not there."""
    from geonp.features.tables import DataError

    p = resolve(base, path)
    if not p.exists():
        raise DataError(f"{what} file {p} not found; set GEONP_DATA to the folder holding the shared data.")
    return p
