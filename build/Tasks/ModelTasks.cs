using TwoTower.Stages;

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

[TaskName("Package")]
[TaskDescription("The serving bundle: weights, vocabularies, candidate embeddings, USearch index, ONNX towers, OpenSearch export")]
[IsDependentOn(typeof(EvaluateTask))]
public sealed class PackageTask : StageTask<PackageStage>;
