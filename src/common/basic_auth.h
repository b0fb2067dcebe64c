// HTTP basic authentication (RFC 7617) on the server side.
#pragma once

#include <string>

namespace pgf {

// Whether `authorization` (the request's Authorization header) carries HTTP basic credentials equal
// to `username`:`password`. The comparison takes the same time wherever the header differs.
bool basicAuthMatches(const std::string& authorization, const std::string& username,
                      const std::string& password);

}  // namespace pgf
