#include "text/tokenizer.h"

namespace tessera::text {

std::string Tokenizer::decode(const std::vector<std::int32_t>& tokens) const {
  std::string out;
  std::int32_t previous = -1;
  for (auto t : tokens) {
    out += decode_token(previous, t);
    previous = t;
  }
  return out;
}

}  // namespace tessera::text
