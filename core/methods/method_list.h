#pragma once
// The registered quantization methods, one line each, in the order of the method menu and of
// "Compare baselines". A line X(id) needs
//   methods/<id>_settings.cpp   methods::MethodInfo <id>_method_info()   (torch-free: the GUI links it)
//   a torch implementation      std::unique_ptr<pipeline::BlockMethod> methods::make_<id>_method()
// and a test that names the method (tests/core/methods/test_method_registry.cpp checks all three).
#define TESSERA_METHODS(X) \
  X(rtn)                   \
  X(awq)                   \
  X(omniquant)             \
  X(tesseraq)
