// Slot names as Patroni derives them from member names.
#include <gtest/gtest.h>

#include "postgres/controller.h"

namespace pgf {
namespace {

TEST(SlotNameTest, KeepsValidNames) {
  EXPECT_EQ(slotNameForMember("node_1"), "node_1");
}

TEST(SlotNameTest, LowercasesAndMapsHostNamePunctuation) {
  EXPECT_EQ(slotNameForMember("Node-1.example.COM"), "node_1_example_com");
}

TEST(SlotNameTest, EncodesOtherCharactersAsCodePoints) {
  // Patroni: "u" + the decimal code point, at least 4 digits.
  EXPECT_EQ(slotNameForMember("a b"), "au0032b");
  EXPECT_EQ(slotNameForMember("a@b"), "au0064b");
  EXPECT_EQ(slotNameForMember("caf\xC3\xA9"), "cafu0233");  // é = U+00E9
  EXPECT_EQ(slotNameForMember("\xE2\x82\xAC"), "u8364");    // € = U+20AC
}

TEST(SlotNameTest, TruncatesTo63Bytes) {
  std::string name(100, 'x');
  EXPECT_EQ(slotNameForMember(name), std::string(63, 'x'));
}

}  // namespace
}  // namespace pgf
