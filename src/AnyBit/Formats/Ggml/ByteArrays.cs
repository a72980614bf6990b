using System.Runtime.CompilerServices;

namespace AnyBit.Formats.Ggml;

// Fixed-length byte and uint16 fields of the block structs (C#'s counterpart of ggml-common.h's uint8_t qs[N] and
// uint16_t qh[N]). They convert to spans, so a block's bytes are read and written by field name instead of by offset.

[InlineArray(4)] internal struct Bytes4 { private byte _first; }
[InlineArray(8)] internal struct Bytes8 { private byte _first; }
[InlineArray(12)] internal struct Bytes12 { private byte _first; }
[InlineArray(16)] internal struct Bytes16 { private byte _first; }
[InlineArray(32)] internal struct Bytes32 { private byte _first; }
[InlineArray(48)] internal struct Bytes48 { private byte _first; }
[InlineArray(64)] internal struct Bytes64 { private byte _first; }
[InlineArray(96)] internal struct Bytes96 { private byte _first; }
[InlineArray(128)] internal struct Bytes128 { private byte _first; }
[InlineArray(8)] internal struct UInt16s8 { private ushort _first; }
