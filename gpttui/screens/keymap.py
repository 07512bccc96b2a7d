"""The user's keymap: `keymap.toml` in gpttui's config directory, binding id = keys.

    # ~/.config/gpttui/keymap.toml  ($XDG_CONFIG_HOME/gpttui/keymap.toml)
    pause = "space,f5"
    doctor = "ctrl+d"

The ids are those of the bindings (`Binding(..., id="pause")`); the app hands the table to
`App.set_keymap`, which rebinds them wherever they are. A file that can't be used is one
warning line (naming the file and what was expected), never a crash: the default keys stay.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

FILE_NAME = "keymap.toml"


def keymap_path() -> Path:
    """Where the user's keymap lives: $XDG_CONFIG_HOME/gpttui/keymap.toml, else ~/.config/gpttui/."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gpttui" / FILE_NAME


@dataclass
class UserKeymap:
    keys: dict[str, str] = field(default_factory=dict)   # binding id -> "key,key"
    warnings: list[str] = field(default_factory=list)    # one line each, for a notification


def load_keymap(path: Path | None = None, known_ids: set[str] | None = None) -> UserKeymap:
    """Read the keymap at `path` (default: keymap_path()); a missing file is an empty keymap.

    `known_ids`: the binding ids there are; an entry naming another id is left out with a warning.
    """
    path = path or keymap_path()
    out = UserKeymap()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return out
    except (OSError, UnicodeDecodeError) as e:
        out.warnings.append(f"{path}: cannot read it ({e}); default keys in use")
        return out
    except tomllib.TOMLDecodeError as e:
        out.warnings.append(f"{path}: not valid TOML ({e}); expected lines like pause = \"space,f5\"; "
                            "default keys in use")
        return out
    bad: list[str] = []
    for binding_id, keys in raw.items():
        if not isinstance(keys, str) or not [k for k in keys.split(",") if k.strip()]:
            bad.append(f"{binding_id} (expected a string of keys such as \"ctrl+d\" or \"space,f5\")")
        elif known_ids is not None and binding_id not in known_ids:
            bad.append(f"{binding_id} (no such binding; known: {', '.join(sorted(known_ids))})")
        else:
            out.keys[binding_id] = ",".join(k.strip() for k in keys.split(",") if k.strip())
    if bad:
        out.warnings.append(f"{path}: ignored {'; '.join(bad)}")
    return out
