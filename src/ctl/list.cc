namespace pgf::ctl {
int placeholder = 0;
}
