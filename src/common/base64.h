// Base64 (RFC 4648, standard alphabet, padded): etcd's JSON gateway encodes keys and values with
// it, and HTTP basic authentication its credentials.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgf {

std::string base64Encode(std::string_view bytes);
// nullopt when `text` is not valid padded or unpadded base64.
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace pgf
