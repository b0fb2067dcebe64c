// Keeps the fakes library non-empty while it has no sources of its own.
namespace pgf::fakes {
int anchor = 0;
}
