namespace TwoTower.Kernels;

/// <summary>
/// Memory a backend's ops read and write: a host array for the SIMD backend, device memory for
/// ILGPU. Made by <see cref="IKernels.Allocate{T}"/> or <see cref="IKernels.Upload{T}"/>; a slice
/// shares its parent's memory, and disposing a slice frees nothing.
/// </summary>
public abstract class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    public abstract int Length { get; }
    public abstract DeviceBuffer<T> Slice(int start, int length);
    public abstract void Dispose();
}

/// <summary>The SIMD backend's buffer: a segment of a managed array.</summary>
public sealed class HostBuffer<T>(T[] array, int start, int length) : DeviceBuffer<T> where T : unmanaged
{
    public T[] Array { get; } = array;
    public int Start { get; } = start;
    public override int Length { get; } = length;
    public Span<T> Span => Array.AsSpan(Start, Length);

    public override DeviceBuffer<T> Slice(int start, int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start + length, Length);
        return new HostBuffer<T>(Array, Start + start, length);
    }

    public override void Dispose() { }
}
