using TwoTower.Evaluation;
using TwoTower.Stages;
using TwoTower.Tuning;

namespace TwoTower.Build.Tasks;

// The model stages, in pipeline order: train, evaluate against the baselines, package for serving.

[TaskName("Train")]
[TaskDescription("Trains the two-tower model (in-batch softmax, AdamW); --resume continues from the last checkpoint")]
[IsDependentOn(typeof(NormalizeTask))]
public sealed class TrainTask : StageTask<TrainStage>;

[TaskName("Blend")]
[TaskDescription("Candidate sources (two-tower, buy-again, recent popularity, co-purchase) and the LambdaRank ranker that orders their union, learnt inside the training period")]
[IsDependentOn(typeof(TrainTask))]
public sealed class BlendTask : StageTask<BlendStage>;

[TaskName("Evaluate")]
[TaskDescription("Full-catalogue top-k accuracy of the model beside popularity, buy-again and random baselines; per-customer MAP@12 and recall of every source, their union and the blend")]
[IsDependentOn(typeof(BlendTask))]
public sealed class EvaluateTask : StageTask<EvaluateStage>;

[TaskName("Compare")]
[TaskDescription("This run's per-customer MAP@12 against --baseline=<artifacts folder> on the same validation data: each method's difference with its paired standard error")]
[IsDependentOn(typeof(EvaluateTask))]
public sealed class CompareTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context)
    {
        var baselineCsv = CommandLine.BaselineCsv(context.Argument("baseline")!);
        var csv = PerCustomerEvaluation.CustomerApPath(context.Store);
        var rows = PairedComparison.Compare(csv, baselineCsv);
        context.Info($"Per customer, paired ({rows[0].Customers:N0} customers): this run ({csv}) against the baseline ({baselineCsv})");
        context.Info(PairedComparison.Table(rows).TrimEnd());
    }
}

[TaskName("Backtest")]
[TaskDescription("The pipeline on backtest.windows validation windows moved back in time (H&M's raw layout, time split), each trained on the days before it; with backtest.baseline, every method paired with a run of those settings, per window and pooled: artifacts/backtest/results.csv")]
[IsDependentOn(typeof(SynthesizeTask))]
public sealed class BacktestTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context) => Backtest.Run(context.Config, context.Store.StageDir("backtest"), context);
}

[TaskName("Package")]
[TaskDescription("The serving bundle: weights, vocabularies, candidate embeddings, USearch index, ONNX towers, OpenSearch export")]
[IsDependentOn(typeof(EvaluateTask))]
public sealed class PackageTask : StageTask<PackageStage>;

[TaskName("Sweep")]
[TaskDescription("Tries the settings of sweep.space on the training period alone (its last data.tuning_days as the tuning set, the validation data unused): artifacts/sweep/results.csv and best.pipeline.yaml")]
[IsDependentOn(typeof(SynthesizeTask))]
public sealed class SweepTask : FrostingTask<BuildContext>
{
    public override void Run(BuildContext context) => Sweep.Run(context.Config, context.Store.StageDir("sweep"), context);
}
