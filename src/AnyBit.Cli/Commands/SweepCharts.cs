using AnyBit.Evaluation;
using ScottPlot;

namespace AnyBit.Cli.Commands;

/// <summary>Pareto charts of a sweep (bits per weight vs KL divergence, and vs perplexity), drawn with ScottPlot as PNG and SVG.</summary>
internal static class SweepCharts
{
    public static void Write(IReadOnlyList<SweepPoint> points, string dir)
    {
        Draw(points, p => Math.Log10(Math.Max(p.KlMean, 1e-6)), "KL divergence (log scale)", true, Path.Combine(dir, "pareto-kl"));
        Draw(points, p => p.Perplexity, "perplexity", false, Path.Combine(dir, "pareto-ppl"));
    }

    private static void Draw(IReadOnlyList<SweepPoint> points, Func<SweepPoint, double> y, string yLabel, bool logY, string path)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int colour = 0;
        foreach (var group in points.GroupBy(p => p.Method).OrderBy(g => g.Key))
        {
            var list = group.OrderBy(p => p.BitsPerWeight).ToList();
            var scatter = plot.Add.ScatterPoints(list.Select(p => p.BitsPerWeight).ToArray(), list.Select(y).ToArray());
            scatter.Color = palette.GetColor(colour++);
            scatter.MarkerSize = 8;
            scatter.LegendText = group.Key;
            foreach (var p in list)
            {
                var text = plot.Add.Text(p.Format, p.BitsPerWeight, y(p));
                text.LabelFontSize = 9;
                text.LabelOffsetX = 4;
                text.LabelFontColor = scatter.Color;
            }
        }
        var front = points.Where(p => p.Pareto).OrderBy(p => p.BitsPerWeight).ToList();
        if (front.Count > 1)
        {
            var line = plot.Add.Scatter(front.Select(p => p.BitsPerWeight).ToArray(), front.Select(y).ToArray());
            line.MarkerSize = 0;
            line.LineWidth = 1.5f;
            line.LinePattern = LinePattern.Dashed;
            line.Color = Colors.Gray;
            line.LegendText = "Pareto front (KL)";
        }
        if (logY)
        {
            var ticks = new ScottPlot.TickGenerators.NumericAutomatic
            {
                LabelFormatter = v => Math.Pow(10, v).ToString("G3", System.Globalization.CultureInfo.InvariantCulture),
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
            };
            plot.Axes.Left.TickGenerator = ticks;
        }
        plot.Axes.Bottom.Label.Text = "bits per weight";
        plot.Axes.Left.Label.Text = yLabel;
        plot.Title($"{yLabel} vs bits per weight");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(path + ".png", 1100, 700);
        plot.SaveSvg(path + ".svg", 1100, 700);
    }
}
