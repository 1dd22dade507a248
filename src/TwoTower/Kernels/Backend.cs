using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using TwoTower.Kernels.Ilgpu;
using TwoTower.Kernels.Simd;
using TwoTower.Pipeline;

namespace TwoTower.Kernels;

/// <summary>
/// The one place that turns the config's <c>accelerator</c> into a backend: cpu → SIMD;
/// ilgpu-cpu → ILGPU's CPU accelerator; cuda / opencl → that device or an error naming what was
/// found; auto → CUDA if present, else an OpenCL GPU, else SIMD. Used by Train, Evaluate, Package,
/// Benchmark and GpuCheck (serving always scores on one SIMD thread: a request is one query).
/// </summary>
public static class Backend
{
    /// <summary>The backend the config asks for; the log names the device chosen and why.</summary>
    public static IKernels Create(string accelerator, int threads, IPipelineLog log)
    {
        var reason = "accelerator 'cpu'";
        IKernels chosen = (accelerator == "cpu" ? null : CreateIlgpu(accelerator, out reason)) ?? (IKernels)new SimdKernels(threads);
        log.Info($"Backend: {chosen.Name} ({reason})");
        return chosen;
    }

    /// <summary>
    /// The ILGPU backend for accelerator = cuda, opencl or ilgpu-cpu; for auto, CUDA if a device is
    /// found, else an OpenCL GPU, else null. `reason` says what was found.
    /// </summary>
    public static IlgpuKernels? CreateIlgpu(string accelerator, out string reason)
    {
        if (accelerator == "ilgpu-cpu")
        {
            // Two threads per warp, one warp per group: fine-grained kernels run ~13× faster on ILGPU's CPU simulator.
            var cpuContext = Context.Create(b => b.CPU(new CPUDevice(2, 1, Environment.ProcessorCount)).EnableAlgorithms());
            reason = "accelerator 'ilgpu-cpu': ILGPU's CPU accelerator (slow; for checking the kernels)";
            return new IlgpuKernels(cpuContext, cpuContext.GetCPUDevice(0).CreateAccelerator(cpuContext));
        }
        // EnableAlgorithms: exp, log and sqrt for the PTX and OpenCL backends.
        var context = Context.Create(b => b.Cuda().OpenCL().EnableAlgorithms());
        var cuda = context.Devices.OfType<CudaDevice>().ToArray();
        var opencl = context.Devices.OfType<CLDevice>().Where(d => d.DeviceType == CLDeviceType.CL_DEVICE_TYPE_GPU).ToArray();
        var found = $"found {cuda.Length} CUDA and {opencl.Length} OpenCL GPU device(s)" +
                    string.Concat(cuda.Select(d => $"; CUDA: {d.Name}")) + string.Concat(opencl.Select(d => $"; OpenCL: {d.Name}"));
        Device? device = accelerator switch
        {
            "cuda" => cuda.FirstOrDefault(),
            "opencl" => opencl.FirstOrDefault(),
            _ => (Device?)cuda.FirstOrDefault() ?? opencl.FirstOrDefault(),
        };
        if (device == null)
        {
            context.Dispose();
            if (accelerator != "auto")
                throw new PipelineError($"accelerator '{accelerator}' asked for, but {found}");
            reason = $"accelerator 'auto': {found}, so the SIMD CPU backend";
            return null;
        }
        reason = $"accelerator '{accelerator}': {found}; using {device.Name}";
        return new IlgpuKernels(context, device.CreateAccelerator(context));
    }

    /// <summary>GpuCheck's device: the configured one, CUDA when the config says auto or cpu; an error without one.</summary>
    public static IlgpuKernels CreateGpu(string accelerator, out string reason) =>
        CreateIlgpu(accelerator is "auto" or "cpu" ? "cuda" : accelerator, out reason)
        ?? throw new PipelineError($"GpuCheck needs a GPU: {reason}");
}
