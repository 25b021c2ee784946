#include "api/device_memory.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "runtime/torch_runtime.h"

namespace tessera::api {

double device_memory_in_use_bytes(const std::string& device) {
  if (device.rfind("cuda", 0) != 0) return 0.0;
  try {
    return runtime::gpu_memory_in_use_bytes(runtime::parse_device(device));
  } catch (const std::exception&) {
    return 0.0;  // the run itself reports a bad device; a plot only shows nothing
  }
}

namespace {

// "model name : Intel(R) Xeon(R) ..." from /proc/cpuinfo; "CPU" where there is none.
std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
  }
  return "CPU";
}

// MemTotal and MemAvailable of /proc/meminfo in bytes (0 where unavailable).
void machine_memory(double& total, double& available) {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  double kib = 0;
  total = available = 0;
  while (in >> key >> kib >> unit) {
    if (key == "MemTotal:") total = kib * 1024.0;
    if (key == "MemAvailable:") available = kib * 1024.0;
  }
}

}  // namespace

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> devices;
  DeviceInfo cpu;
  cpu.id = "cpu";
  cpu.name = cpu_model_name();
  cpu.cores = static_cast<int>(std::thread::hardware_concurrency());
  machine_memory(cpu.total_bytes, cpu.free_bytes);
  devices.push_back(cpu);
  for (const auto& d : runtime::cuda_devices()) {
    DeviceInfo gpu;
    gpu.id = "cuda:" + std::to_string(d.index);
    gpu.name = d.name;
    gpu.total_bytes = static_cast<double>(d.total_bytes);
    gpu.free_bytes = static_cast<double>(d.free_bytes);
    devices.push_back(gpu);
  }
  return devices;
}

double resident_memory_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace tessera::api
