using TwoTower.Kernels;

namespace TwoTower.Model;

/// <summary>
/// A batch's entries of the repeat bias (see <see cref="RepeatLogits"/>): for batch row i and history
/// slot s, every batch column j whose article is the one at slot s of row i's history, in order of
/// (i, s, j). Built on the host from a chain of the batch's columns per article (an array over the
/// article ids, reset after each batch); uploaded with one copy per buffer, which grow when a
/// batch brings more entries than the last.
/// </summary>
/// <param name="articleIds">One more than the largest article id of the items and the histories.</param>
public sealed class RepeatBatch(IKernels kernels, int batchSize, int historyLength, int articleIds) : IDisposable
{
    readonly int[] starts = new int[batchSize + 1];
    readonly List<int> columns = [], slots = [];
    readonly int[] firstColumn = Enumerable.Repeat(-1, articleIds).ToArray();
    readonly int[] nextColumn = new int[batchSize];
    readonly DeviceBuffer<int> startsBuffer = kernels.Allocate<int>(batchSize + 1);
    DeviceBuffer<int> columnsBuffer = kernels.Allocate<int>(1), slotsBuffer = kernels.Allocate<int>(1);
    int rows;

    /// <summary>The entries of the batch rows: their articles items[batchRows[j]], their histories history[batchRows[i]·length ..].</summary>
    public void Build(int[] items, int[] history, ReadOnlySpan<int> batchRows)
    {
        rows = batchRows.Length;
        for (var j = rows - 1; j >= 0; j--)
        {
            var item = items[batchRows[j]];
            nextColumn[j] = firstColumn[item];
            firstColumn[item] = j;
        }
        columns.Clear();
        slots.Clear();
        for (var i = 0; i < rows; i++)
        {
            starts[i] = columns.Count;
            var bag = history.AsSpan(batchRows[i] * historyLength, historyLength);
            for (var s = 0; s < historyLength; s++)
            {
                if (bag[s] < 0)
                    continue;
                for (var j = firstColumn[bag[s]]; j >= 0; j = nextColumn[j])
                {
                    columns.Add(j);
                    slots.Add(s);
                }
            }
        }
        starts[rows] = columns.Count;
        for (var j = 0; j < rows; j++)
            firstColumn[items[batchRows[j]]] = -1;
    }

    /// <summary>Copies the last <see cref="Build"/> to the backend: the op's operand, with the bias and its gradient.</summary>
    public RepeatLogits Upload(DeviceBuffer<float> bias, DeviceBuffer<float> biasGradient)
    {
        if (columns.Count > columnsBuffer.Length)
        {
            columnsBuffer.Dispose();
            slotsBuffer.Dispose();
            columnsBuffer = kernels.Allocate<int>(2 * columns.Count);
            slotsBuffer = kernels.Allocate<int>(2 * columns.Count);
        }
        kernels.CopyFromHost<int>(starts.AsSpan(0, rows + 1), startsBuffer);
        kernels.CopyFromHost<int>(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(columns), columnsBuffer);
        kernels.CopyFromHost<int>(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(slots), slotsBuffer);
        return new RepeatLogits(startsBuffer, columnsBuffer, slotsBuffer, columns.Count, bias, historyLength, biasGradient);
    }

    public void Dispose()
    {
        startsBuffer.Dispose();
        columnsBuffer.Dispose();
        slotsBuffer.Dispose();
    }
}
