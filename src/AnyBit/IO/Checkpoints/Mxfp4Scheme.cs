using System.Text.Json;

namespace AnyBit.IO.Checkpoints;

/// <summary>
/// gpt-oss's MXFP4 weights (<c>quant_method: "mxfp4"</c>), written from transformers' <c>integrations/mxfp4.py</c>
/// (<c>convert_moe_packed_tensors</c>): <c>NAME_blocks</c> uint8 [..., out, in/32, 16] holds element 2j of a block
/// in the low nibble of byte j and element 2j + 1 in the high nibble, as E2M1 codes (FP4_VALUES); <c>NAME_scales</c>
/// uint8 [..., out, in/32] the E8M0 exponents: w = FP4_VALUES[code]·2^(scale − 127). They become ggml MXFP4 blocks
/// (element j and j + 16 share a byte; doubled values under a halved scale, the same numbers) under NAME, 2-D for
/// a linear layer, 3-D [experts, out, in] for a Mixture-of-Experts tensor.
/// </summary>
public sealed class Mxfp4Scheme : CheckpointScheme
{
    public override IReadOnlyList<string> Methods => ["mxfp4"];

    public override CheckpointReader Open(JsonElement config, string source) => new Reader();

    private sealed class Reader : CheckpointReader
    {
        public override string Description => "MXFP4 (gpt-oss blocks and scales)";

        public override string? ModuleOf(string tensorName) =>
            tensorName.EndsWith("_blocks", StringComparison.Ordinal) ? tensorName[..^"_blocks".Length] : null;

        public override StoredTensor Convert(string prefix, ModuleTensors m)
        {
            var blocks = m.RequiredNamed(prefix + "_blocks");
            var scales = m.RequiredNamed(prefix + "_scales");
            if (blocks.Type != TensorType.U8 || blocks.Shape.Length < 3 || blocks.Shape[^1] != 16)
                throw m.Bad(blocks, $"expected uint8 [..., rows, blocks, 16], found {TensorTypes.Traits(blocks.Type).Name} [{string.Join(", ", blocks.Shape)}]");
            m.Expect(scales, blocks.Shape[..^1], TensorType.U8);
            long[] shape = [.. blocks.Shape[..^2], blocks.Shape[^2] * 32];
            long count = scales.ElementCount;
            const int blockBytes = 17;
            var file = MappedFile.InMemory(m.Source, count * blockBytes);
            try
            {
                var b = blocks.Bytes;
                var e = scales.Bytes;
                for (long k = 0; k < count; k++)
                {
                    var dst = file.Writable(k * blockBytes, blockBytes);
                    dst[0] = e[(int)k];
                    var src = b.Slice((int)(k * 16), 16);
                    // Element i of the block: code(i) = nibble i mod 2 of byte i / 2 (low first).
                    for (int j = 0; j < 16; j++)
                    {
                        int lo = Code(src, j), hi = Code(src, j + 16);
                        dst[1 + j] = (byte)(lo | hi << 4);
                    }
                }
            }
            catch
            {
                file.Dispose();
                throw;
            }
            return new StoredTensor(prefix, shape, TensorType.MXFP4, file, 0, file.Length);
        }

        private static int Code(ReadOnlySpan<byte> block, int i) => (block[i >> 1] >> (4 * (i & 1))) & 15;
    }
}
