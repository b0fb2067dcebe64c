// Splits a byte stream of concatenated JSON objects (etcd's streamed watch answers) into whole
// objects, however the stream was cut into chunks: an object may arrive split across chunks, and
// one chunk may carry several objects. Strings (with escaped quotes and braces) are respected.
// Bytes between objects (whitespace, newlines) are skipped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgf {

class JsonStreamSplitter {
 public:
  // Appends `chunk` and returns the text of every object it completed, in order.
  std::vector<std::string> feed(std::string_view chunk);
  // Bytes of an unfinished object waiting for more input.
  size_t pending() const { return buf_.size(); }
  void reset();

 private:
  std::string buf_;
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
};

}  // namespace pgf
