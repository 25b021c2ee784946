// RTN's declaration (methods/method_registry.h): no settings of its own.
#include "methods/method_registry.h"

namespace tessera::methods {

MethodInfo rtn_method_info() {
  MethodInfo m;
  m.id = "rtn";
  m.label = "RTN (round to nearest)";
  m.colour = 0x757575;
  m.help = "round to nearest on the min/max grid of each group: the baseline every other method starts from";
  return m;
}

}  // namespace tessera::methods
