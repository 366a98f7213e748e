"""Text <-> CTC label ids.

Id 0 is the CTC blank (Keras 3 ``ops.ctc_loss`` / ``ops.ctc_decode`` use ``mask_index=0``);
characters are 1..V in the order of :attr:`Charset.chars`. The charset is built from the
training labels and saved with every model; it is never re-derived at prediction time.

Text is compared in Unicode NFC: ``u`` + combining diaeresis (U+0308) is the character ``ü``.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

BLANK = 0


def nfc(text: str) -> str:
    """``text`` in Unicode normal form NFC (composed characters)."""
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Charset:
    """An ordered vocabulary of characters; ``ids`` 1..len(chars), 0 is the blank."""

    chars: tuple[str, ...]

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "Charset":
        """Sorted set of every character in ``texts`` (NFC)."""
        return cls(tuple(sorted({ch for text in texts for ch in nfc(text)})))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def num_classes(self) -> int:
        """Width of the model's softmax: characters + blank."""
        return len(self.chars) + 1

    @property
    def _index(self) -> dict[str, int]:
        return {ch: i + 1 for i, ch in enumerate(self.chars)}

    def unknown(self, text: str) -> set[str]:
        """Characters of ``text`` (NFC) that are not in the charset."""
        return set(nfc(text)) - set(self.chars)

    def encode(self, text: str, drop_unknown: bool = False) -> list[int]:
        """Label ids of ``text`` (NFC) at its true length (no padding).

        Raises:
            KeyError: an unknown character, unless ``drop_unknown`` (then it is left out).
        """
        index, text = self._index, nfc(text)
        if drop_unknown:
            return [index[ch] for ch in text if ch in index]
        missing = self.unknown(text)
        if missing:
            raise KeyError(f"characters not in the charset: {''.join(sorted(missing))!r}")
        return [index[ch] for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of label ids; blanks (0) and padding (negative ids) are ignored."""
        return "".join(self.chars[i - 1] for i in ids if 0 < i <= len(self.chars))

    def extend(self, texts: Iterable[str]) -> tuple["Charset", str]:
        """This charset plus the new characters of ``texts`` appended at the end.

        Existing characters keep their ids. Returns the new charset and the added characters.
        """
        added = sorted({ch for text in texts for ch in nfc(text)} - set(self.chars))
        return Charset(self.chars + tuple(added)), "".join(added)

    def to_json(self) -> str:
        return json.dumps({"blank": BLANK, "chars": list(self.chars)}, ensure_ascii=False, indent=1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Charset":
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(tuple(payload["chars"]))


def ctc_frames_needed(ids: list[int]) -> int:
    """Minimum CTC output frames for a label: its length plus one blank per repeated pair."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)
