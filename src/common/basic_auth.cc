#include "common/basic_auth.h"

#include <string_view>

#include "common/base64.h"
#include "common/http_message.h"

namespace pgf {

bool basicAuthMatches(const std::string& authorization, const std::string& username,
                      const std::string& password) {
  const std::string expected = base64Encode(username + ":" + password);
  std::string_view given(authorization);
  if (given.size() < 6 || lowerAscii(given.substr(0, 6)) != "basic ")
    return false;
  given.remove_prefix(6);
  while (!given.empty() && given.front() == ' ')
    given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ')
    given.remove_suffix(1);
  // Constant time over the expected length: how much of the secret matched does not show.
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i)
    diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

}  // namespace pgf
