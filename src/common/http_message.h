// The parts of HTTP/1.1 message syntax that pgfleet's client (http_client.h) and server
// (http_server.h) share: case-insensitive names, field values, lengths, request targets and
// status lines. Pure functions: no I/O, no allocation beyond their results, no exceptions.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pgf {

char asciiLower(char c);
std::string lowerAscii(std::string_view s);
bool equalsIgnoreCase(std::string_view a, std::string_view b);
// Without leading and trailing spaces and tabs.
std::string_view trimHttpSpace(std::string_view s);
// true when the comma-separated field value `list` holds `token` (case-insensitive).
bool hasHttpToken(std::string_view list, std::string_view token);
// RFC 9110 token characters only: what a method or a field name may contain.
bool isHttpToken(std::string_view s);
// No CR, LF or NUL, which would break a message's framing.
bool isSafeHttpText(std::string_view s);

// A Content-Length value: decimal digits only, at most 18 of them (so it cannot overflow).
std::optional<size_t> parseHttpLength(std::string_view text);
// A chunk-size line ("1a3f" or "1a3f;name=value"): the size in hex, extensions ignored.
std::optional<size_t> parseChunkSize(std::string_view line);
// "HTTP/1.1 200 OK" (the reason phrase may be empty or missing).
bool parseStatusLine(std::string_view s, int* status, bool* http10);

// %-decodes `in` into *out ('+' stays '+'); false on a bad %-escape.
bool percentDecode(std::string_view in, std::string* out);
// Splits a request target into its %-decoded path and query parameters ('+' is a space in the
// query). false when the target is not an origin-form path ("/..."), or has a bad %-escape.
bool parseRequestTarget(std::string_view target, std::string* path,
                        std::multimap<std::string, std::string>* query);

// RFC 3986 percent-encoding of everything but the unreserved characters (letters, digits, "-._~"):
// safe as a path segment, a query value or the user information of a URI.
std::string percentEncode(std::string_view s);

// "OK", "Not Found", ... for the status codes the project uses; "Unknown" otherwise.
const char* httpReasonPhrase(int status);

}  // namespace pgf
