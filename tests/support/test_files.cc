#include "support/test_files.h"

#include <fstream>
#include <random>
#include <vector>

namespace pgf::testing {

std::string fileTail(const std::string& path, int lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);)
    all.push_back(line);
  std::string out;
  for (size_t i = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0; i < all.size();
       ++i)
    out += all[i] + "\n";
  return out;
}

std::string randomPassword() {
  static const char kAlphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 24; ++i)
    s += kAlphabet[rd() % (sizeof kAlphabet - 1)];
  return s;
}

}  // namespace pgf::testing
