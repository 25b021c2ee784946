#pragma once
// TESSERA_TEST_MAIN for tests that create widgets: the same slot-list check as
// tests/support/tessera_test.h, with a QApplication instead of a QCoreApplication.
#include <QApplication>
#include <QDir>
#include <QSettings>
#include <QStandardPaths>

#include "tessera_test.h"

namespace tessera_test {
// Settings and the autosaved session go to Qt's test locations under the given application name,
// emptied first: what an earlier run (or another checkout sharing this HOME) left there must not
// decide what this run restores.
inline void use_fresh_settings(const char* application_name) {
  QStandardPaths::setTestModeEnabled(true);
  QApplication::setOrganizationName("Tessera");
  QApplication::setApplicationName(application_name);
  QSettings().clear();
  QDir(QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation)).removeRecursively();
}
}  // namespace tessera_test

#define TESSERA_GUI_TEST_MAIN(Class, ...)                                         \
  int main(int argc, char** argv) {                                               \
    QApplication app(argc, argv);                                                 \
    Class tc;                                                                     \
    if (!tessera_test::slots_match(tc.metaObject(), #__VA_ARGS__)) return 1;      \
    return QTest::qExec(&tc, argc, argv);                                         \
  }
