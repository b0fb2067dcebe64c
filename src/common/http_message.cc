#include "common/http_message.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>

namespace pgf {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

bool decode(std::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size())
        return false;
      int hi = hexValue(in[i + 1]);
      int lo = hexValue(in[i + 2]);
      if (hi < 0 || lo < 0)
        return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

}  // namespace

char asciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = asciiLower(c);
  return out;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return asciiLower(x) == asciiLower(y);
         });
}

std::string_view trimHttpSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool hasHttpToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (equalsIgnoreCase(trimHttpSpace(list.substr(0, comma)), token))
      return true;
    if (comma == std::string_view::npos)
      break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool isHttpToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
  });
}

bool isSafeHttpText(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::optional<size_t> parseHttpLength(std::string_view text) {
  if (text.empty() || text.size() > 18 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  size_t length = 0;
  for (char c : text)
    length = length * 10 + static_cast<size_t>(c - '0');
  return length;
}

std::optional<size_t> parseChunkSize(std::string_view line) {
  const std::string_view text = trimHttpSpace(line.substr(0, line.find(';')));
  if (text.empty())
    return std::nullopt;
  size_t size = 0;
  for (char c : text) {
    const int digit = hexValue(c);
    if (digit < 0 || size > (SIZE_MAX >> 4))
      return std::nullopt;
    size = size * 16 + static_cast<size_t>(digit);
  }
  return size;
}

bool parseStatusLine(std::string_view s, int* status, bool* http10) {
  auto digit = [&](size_t i, char lo) { return s[i] >= lo && s[i] <= '9'; };
  if (s.size() < 12 || !s.starts_with("HTTP/1.") || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
      !digit(9, '1') || s[9] > '5' || !digit(10, '0') || !digit(11, '0') ||
      (s.size() > 12 && s[12] != ' '))
    return false;
  *http10 = s[7] == '0';
  *status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  return true;
}

bool percentDecode(std::string_view in, std::string* out) {
  return decode(in, /*plus_is_space=*/false, out);
}

bool parseRequestTarget(std::string_view target, std::string* path,
                        std::multimap<std::string, std::string>* query) {
  if (target.empty() || target.front() != '/')
    return false;
  auto q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  if (!decode(raw_path, /*plus_is_space=*/false, path))
    return false;
  query->clear();
  if (q == std::string_view::npos)
    return true;
  std::string_view rest = target.substr(q + 1);
  auto hash = rest.find('#');
  if (hash != std::string_view::npos)
    rest = rest.substr(0, hash);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty())
      continue;
    auto eq = pair.find('=');
    std::string key, value;
    if (!decode(pair.substr(0, eq), true, &key))
      return false;
    if (eq != std::string_view::npos && !decode(pair.substr(eq + 1), true, &value))
      return false;
    query->emplace(std::move(key), std::move(value));
  }
  return true;
}

std::string percentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

const char* httpReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

}  // namespace pgf
