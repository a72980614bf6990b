#!/usr/bin/env python3
"""Writes src/AnyBit/Text/UnicodeNormalization.txt, the data UnicodeNormalization.cs normalizes with.

AnyBit builds with InvariantGlobalization, where string.Normalize leaves non-ASCII text as it is, so the NFC/NFKC
normalizers of tokenizer.json need their own tables. They come from Python's unicodedata (its Unicode version is
written into the file's first line). Lines, code points in hex:
  c CP CCC            canonical combining class (non-zero only)
  d CP X [Y...] [*]   canonical decomposition, one level; '*' marks a primary composite (NFC recomposes it)
  k CP X [Y...]       compatibility decomposition, one level
Hangul syllables are left out: they decompose and compose by formula.
"""
import os
import sys
import unicodedata

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "AnyBit", "Text", "UnicodeNormalization.txt")
lines = [f"# Unicode {unicodedata.unidata_version}, from Python's unicodedata by scripts/gen-unicode-normalization.py"]
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF or 0xAC00 <= cp <= 0xD7A3:
        continue
    ch = chr(cp)
    ccc = unicodedata.combining(ch)
    if ccc:
        lines.append(f"c {cp:X} {ccc}")
    d = unicodedata.decomposition(ch)
    if not d:
        continue
    parts = d.split()
    if parts[0].startswith("<"):
        lines.append(f"k {cp:X} " + " ".join(parts[1:]))
    else:
        composite = len(parts) == 2 and unicodedata.normalize("NFC", unicodedata.normalize("NFD", ch)) == ch
        lines.append(f"d {cp:X} " + " ".join(parts) + (" *" if composite else ""))
with open(out, "w", encoding="ascii", newline="\n") as f:
    f.write("\n".join(lines) + "\n")
print(f"{out}: {len(lines)} lines", file=sys.stderr)
