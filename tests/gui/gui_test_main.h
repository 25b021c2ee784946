#pragma once
// TESSERA_TEST_MAIN for tests that create widgets: the same slot-list check as
// tests/support/tessera_test.h, with a QApplication instead of a QCoreApplication.
#include <QApplication>

#include "tessera_test.h"

#define TESSERA_GUI_TEST_MAIN(Class, ...)                                         \
  int main(int argc, char** argv) {                                               \
    QApplication app(argc, argv);                                                 \
    Class tc;                                                                     \
    if (!tessera_test::slots_match(tc.metaObject(), #__VA_ARGS__)) return 1;      \
    return QTest::qExec(&tc, argc, argv);                                         \
  }
