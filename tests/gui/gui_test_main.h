#pragma once
// TESSERA_TEST_MAIN for tests that create widgets: the same slot-list check as
// tests/support/tessera_test.h, with a QApplication instead of a QCoreApplication.
#include <stdlib.h>

#include <QApplication>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "tessera_test.h"

namespace tessera_test {
// QSettings (XDG_CONFIG_HOME) and the autosaved session (XDG_DATA_HOME) go to a folder of this
// test process's own under /tmp: nothing an earlier or a concurrent run left (another checkout
// sharing this HOME) can reach this one, and the user's real settings are never touched. A
// workbench the test starts inherits the same folders. Once per process (initTestCase); the folder
// is removed when the test exits.
inline void use_fresh_settings(const char* application_name) {
  static char folder[] = "/tmp/tessera-gui-settings-XXXXXX";
  if (!::mkdtemp(folder)) qFatal("cannot create a settings folder under /tmp");
  std::atexit([] { std::filesystem::remove_all(folder); });
  ::setenv("XDG_CONFIG_HOME", (std::string(folder) + "/config").c_str(), 1);
  ::setenv("XDG_DATA_HOME", (std::string(folder) + "/data").c_str(), 1);
  QApplication::setOrganizationName("Tessera");
  QApplication::setApplicationName(application_name);
}
}  // namespace tessera_test

#define TESSERA_GUI_TEST_MAIN(Class, ...)                                    \
  int main(int argc, char** argv) {                                          \
    QApplication app(argc, argv);                                            \
    Class tc;                                                                \
    if (!tessera_test::slots_match(tc.metaObject(), #__VA_ARGS__)) return 1; \
    return QTest::qExec(&tc, argc, argv);                                    \
  }
