#include "common/http_message.h"

#include <gtest/gtest.h>

namespace pgf {
namespace {

TEST(HttpMessage, NamesAndTokens) {
  EXPECT_TRUE(equalsIgnoreCase("Content-Length", "content-length"));
  EXPECT_FALSE(equalsIgnoreCase("Content-Length", "content-lengths"));
  EXPECT_EQ(lowerAscii("Keep-Alive"), "keep-alive");
  EXPECT_EQ(trimHttpSpace(" \t value \t"), "value");
  EXPECT_TRUE(hasHttpToken("Upgrade, Keep-Alive", "keep-alive"));
  EXPECT_FALSE(hasHttpToken("keep-alived", "keep-alive"));
  EXPECT_TRUE(isHttpToken("X-Custom_1"));
  EXPECT_FALSE(isHttpToken("bad name"));
  EXPECT_FALSE(isHttpToken(""));
  EXPECT_TRUE(isSafeHttpText("/path?x=1"));
  EXPECT_FALSE(isSafeHttpText("a\r\nInjected: 1"));
  EXPECT_FALSE(isSafeHttpText(std::string_view("a\0b", 3)));
}

TEST(HttpMessage, Lengths) {
  EXPECT_EQ(parseHttpLength("0"), 0u);
  EXPECT_EQ(parseHttpLength("1234"), 1234u);
  EXPECT_FALSE(parseHttpLength(""));
  EXPECT_FALSE(parseHttpLength("-1"));
  EXPECT_FALSE(parseHttpLength("12abc"));
  EXPECT_FALSE(parseHttpLength(" 12"));
  EXPECT_FALSE(parseHttpLength("1234567890123456789"));  // 19 digits could overflow
  EXPECT_EQ(parseChunkSize("1a3F"), 0x1a3fu);
  EXPECT_EQ(parseChunkSize("10;name=value"), 16u);
  EXPECT_EQ(parseChunkSize("0"), 0u);
  EXPECT_FALSE(parseChunkSize(""));
  EXPECT_FALSE(parseChunkSize("xyz"));
  EXPECT_FALSE(parseChunkSize("fffffffffffffffff"));  // above SIZE_MAX
}

TEST(HttpMessage, StatusLines) {
  int status = 0;
  bool http10 = false;
  ASSERT_TRUE(parseStatusLine("HTTP/1.1 503 Service Unavailable", &status, &http10));
  EXPECT_EQ(status, 503);
  EXPECT_FALSE(http10);
  ASSERT_TRUE(parseStatusLine("HTTP/1.0 200", &status, &http10));
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(http10);
  EXPECT_FALSE(parseStatusLine("HTTP/2 200 OK", &status, &http10));
  EXPECT_FALSE(parseStatusLine("HTTP/1.1 20 OK", &status, &http10));
  EXPECT_FALSE(parseStatusLine("HTTP/1.1 600 Nope", &status, &http10));
  EXPECT_FALSE(parseStatusLine("HTTP/1.1 200OK", &status, &http10));
  EXPECT_STREQ(httpReasonPhrase(404), "Not Found");
  EXPECT_STREQ(httpReasonPhrase(299), "Unknown");
}

}  // namespace
}  // namespace pgf
