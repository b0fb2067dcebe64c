// Base64 (RFC 4648, standard alphabet, with padding), for HTTP basic authentication.
#pragma once

#include <string>
#include <string_view>

namespace pgf {

std::string base64Encode(std::string_view data);

}  // namespace pgf
