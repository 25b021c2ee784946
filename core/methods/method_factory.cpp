// The torch side of the registry: the BlockMethod of a run's method id, from methods/method_list.h.
#include <memory>

#include "methods/method_list.h"
#include "methods/method_registry.h"
#include "pipeline/block_method.h"
#include "util/error.h"

namespace tessera::methods {
#define TESSERA_DECLARE_METHOD_FACTORY(id) std::unique_ptr<pipeline::BlockMethod> make_##id##_method();
TESSERA_METHODS(TESSERA_DECLARE_METHOD_FACTORY)
#undef TESSERA_DECLARE_METHOD_FACTORY
}  // namespace tessera::methods

namespace tessera::pipeline {

std::unique_ptr<BlockMethod> make_block_method(const RunConfig& config) {
  const std::string& id = methods::method_info(config.method).id;  // throws naming the methods
#define TESSERA_MAKE_METHOD(name) \
  if (id == #name) return methods::make_##name##_method();
  TESSERA_METHODS(TESSERA_MAKE_METHOD)
#undef TESSERA_MAKE_METHOD
  throw Error("method \"" + id + "\" has no implementation (methods/method_list.h)");
}

}  // namespace tessera::pipeline
