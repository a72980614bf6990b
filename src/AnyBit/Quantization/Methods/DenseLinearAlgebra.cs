namespace AnyBit.Quantization.Methods;

/// <summary>
/// The few dense double-precision routines GPTQ and the planners need (Cholesky, triangular inverse). Written here
/// because the sizes are small (a layer's input width) and no maintained .NET numerics package is a dependency.
/// </summary>
public static class DenseLinearAlgebra
{
    /// <summary>Lower Cholesky factor in place (the upper triangle is zeroed); throws when A is not positive definite.</summary>
    public static void CholeskyInPlace(double[] a, int n)
    {
        for (int j = 0; j < n; j++)
        {
            long rj = (long)j * n;
            double diag = a[rj + j];
            for (int k = 0; k < j; k++) diag -= a[rj + k] * a[rj + k];
            if (!(diag > 0)) throw new AnyBitException($"the Hessian is not positive definite (pivot {j}); raise the damping");
            double l = Math.Sqrt(diag);
            a[rj + j] = l;
            void Row(int i)
            {
                long ri = (long)i * n;
                double s = a[ri + j];
                for (int k = 0; k < j; k++) s -= a[ri + k] * a[rj + k];
                a[ri + j] = s / l;
            }
            if (n - j > 256) Parallel.For(j + 1, n, Row);
            else for (int i = j + 1; i < n; i++) Row(i);
        }
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) a[(long)i * n + j] = 0;
    }

    /// <summary>Inverse of an upper triangular matrix.</summary>
    public static double[] InvertUpperTriangular(double[] u, int n)
    {
        var inv = new double[(long)n * n];
        // Row i of X = U⁻¹ solves x U = e_i left to right; each step subtracts a multiple of a row of U, so every
        // access is contiguous. Rows are independent.
        Parallel.For(0, n, i =>
        {
            var x = new double[n];
            x[i] = 1;
            long ri = (long)i * n;
            for (int k = i; k < n; k++)
            {
                double v = x[k] / u[(long)k * n + k];
                inv[ri + k] = v;
                if (v == 0) continue;
                long rk = (long)k * n;
                for (int j = k + 1; j < n; j++) x[j] -= v * u[rk + j];
            }
        });
        return inv;
    }
}
