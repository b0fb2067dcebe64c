#include "postgres/lsn.h"

#include <gtest/gtest.h>

namespace pgf {
namespace {

TEST(Lsn, ParsesAndFormatsRoundTrip) {
  auto r = parseLsn("0/5000060");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0x5000060);
  EXPECT_EQ(formatLsn(*r), "0/5000060");
  auto big = parseLsn("1A/FF");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(*big, (int64_t{0x1A} << 32) | 0xFF);
  EXPECT_EQ(formatLsn(*big), "1A/FF");
}

TEST(Lsn, RejectsMalformedText) {
  for (const char* bad : {"", "/", "0/", "/1", "g/1", "1/2/3", "100000000/0", "0/1 "}) {
    EXPECT_FALSE(parseLsn(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace pgf
