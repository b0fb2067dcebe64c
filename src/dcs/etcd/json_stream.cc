#include "dcs/etcd/json_stream.h"

namespace pgf {

void JsonStreamSplitter::reset() {
  buf_.clear();
  depth_ = 0;
  in_string_ = false;
  escaped_ = false;
}

std::vector<std::string> JsonStreamSplitter::feed(std::string_view chunk) {
  std::vector<std::string> out;
  for (char c : chunk) {
    if (depth_ == 0) {
      // Outside any object only an opening brace matters; anything else is separator noise.
      if (c != '{')
        continue;
      buf_.clear();
    }
    buf_ += c;
    if (in_string_) {
      if (escaped_)
        escaped_ = false;
      else if (c == '\\')
        escaped_ = true;
      else if (c == '"')
        in_string_ = false;
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        out.push_back(std::move(buf_));
        buf_.clear();
      }
    }
  }
  return out;
}

}  // namespace pgf
