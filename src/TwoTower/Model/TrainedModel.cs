using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Pipeline;

namespace TwoTower.Model;

/// <summary>What Train leaves in artifacts/train/, and the model built back from it.</summary>
public static class TrainedModel
{
    public const string WeightsFile = "model.safetensors";
    public const string CheckpointFile = "checkpoint.safetensors";
    public const string HistoryFile = "history.json";
    public const string ConfigFile = "config.yaml";

    /// <summary>Each categorical column's vocabulary size (artifacts/encode): the embedding and one-hot sizes.</summary>
    public static Dictionary<string, int> VocabularySizes(ArtifactStore store, FeatureSet features) =>
        features.CategoricalColumns.ToDictionary(c => c, c => Vocabulary.Read(store.StageDir("encode"), c).Count);

    /// <summary>The configured model with the weights Train wrote.</summary>
    public static TwoTowerModel Load(ArtifactStore store, PipelineConfig config)
    {
        var model = TwoTowerModel.Create(config, VocabularySizes(store, FeatureSet.From(config)));
        model.LoadWeights(Path.Combine(store.StageDir("train"), WeightsFile));
        return model;
    }
}
