using TwoTower.Model;

namespace TwoTower.Retrieval;

/// <summary>One proposed article for a customer and the source's score for it (higher is better).</summary>
public readonly record struct Candidate(int Article, float Score);

/// <summary>
/// A candidate source: from the training purchases as of a day, up to `count` articles per
/// customer, best first. Sources are built from training data only.
/// </summary>
public interface ICandidateSource
{
    /// <summary>The config name of the source (retrieve.&lt;name&gt;), also its name in reports and features.</summary>
    string Name { get; }

    /// <summary>How many candidates it contributes per customer.</summary>
    int Count { get; }

    /// <summary>Clears `output` and fills it with the customer's best candidates, best first, at most Count, distinct articles.</summary>
    void Candidates(int customer, List<Candidate> output);
}

/// <summary>The model's score for any (customer, article) it can score, blend features; <see cref="ModelScore.None"/> otherwise.</summary>
public interface IModelScorer
{
    ModelScore Score(int customer, int article);
}
