using System.Diagnostics;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Evaluation;
using TwoTower.Kernels;
using TwoTower.Model;
using TwoTower.Pipeline;

namespace TwoTower.Benchmarks;

/// <summary>
/// The `Benchmark` target: times Ingest (CSV → Parquet), one training epoch and the full
/// evaluation on the configured data, several runs each, and prints medians with the FLOP rate
/// of the heavy ops. Not a test: figures depend on the machine.
/// </summary>
public static class PipelineBenchmark
{
    public static void Run(PipelineConfig config, ArtifactStore store, IPipelineLog log, int repeats)
    {
        var features = FeatureSet.From(config);
        var rows = new List<(string What, double Median, string Detail)>();

        var ingest = Median(repeats, () =>
        {
            var tmp = Path.Combine(Path.GetTempPath(), $"twotower-bench-{Environment.ProcessId}.parquet");
            foreach (var path in new[] { DataFiles.TrainCsv(config), DataFiles.ValCsv(config) })
                CsvTransactions.Read(path, features.CategoricalColumns, features.NumericColumns, false).Table.WriteParquet(tmp);
            File.Delete(tmp);
        });
        var csvBytes = new FileInfo(DataFiles.TrainCsv(config)).Length + new FileInfo(DataFiles.ValCsv(config)).Length;
        rows.Add(("Ingest (train + val CSV → Parquet)", ingest, $"{csvBytes / 1e6:F0} MB of CSV, {csvBytes / 1e6 / ingest:F0} MB/s"));

        var train = TrainingColumns.Read(store, "train");
        var val = TrainingColumns.Read(store, "val");
        var model = TwoTowerModel.Create(config, TrainedModel.VocabularySizes(store, features));
        model.Initialize(config.Get(ConfigSchema.Seed));
        using var kernels = Backend.Create(config.Get(ConfigSchema.Accelerator), config.Threads, log);
        var options = TrainOptions.From(config);
        using var trainer = new Trainer(model, kernels, options, train, features.CandidateId);
        var epoch = 0;
        var epochSeconds = Median(repeats, () => trainer.RunEpoch(++epoch));
        var dim = model.Query.OutputDim;
        var batch = (double)options.BatchSize;
        var softmaxFlops = 6.0 * batch * batch * dim * trainer.BatchesPerEpoch;
        rows.Add(("Train, one epoch", epochSeconds,
            $"{train.RowCount / epochSeconds:N0} rows/s; in-batch softmax {softmaxFlops / 1e9:F0} GFLOP → {softmaxFlops / 1e9 / epochSeconds:F1} GFLOP/s over the whole epoch"));

        var catalogue = 0;
        var evalSeconds = Median(repeats, () => CatalogueRanks.Compute(model, kernels, train, val, features, out catalogue));
        var evalFlops = 2.0 * val.RowCount * catalogue * dim;
        rows.Add(("Evaluate (rank of every validation row)", evalSeconds,
            $"{val.RowCount:N0} queries × {catalogue:N0} candidates: {evalFlops / 1e9:F0} GFLOP → {evalFlops / 1e9 / evalSeconds:F1} GFLOP/s"));

        log.Info($"\nBenchmark: median of {repeats} runs, {config.Threads} threads, {kernels.Name}, {Environment.ProcessorCount} cores");
        log.Info($"{"what",-42} {"median s",9}  detail");
        foreach (var (what, median, detail) in rows)
            log.Info($"{what,-42} {median,9:F3}  {detail}");
        log.Info($"peak working set: {Process.GetCurrentProcess().PeakWorkingSet64 / 1e9:F2} GB");
    }

    /// <summary>Median wall time of `repeats` runs of action, in seconds.</summary>
    public static double Median(int repeats, Action action)
    {
        var times = new double[repeats];
        for (var i = 0; i < repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            action();
            times[i] = watch.Elapsed.TotalSeconds;
        }
        Array.Sort(times);
        return times[repeats / 2];
    }
}
