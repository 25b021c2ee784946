#pragma once
// Tests are Qt Test classes. Where Qt is not installed (the GPU machine), the same sources build
// against a small stand-in for the QtTest macros used here, so core tests run on both machines.
//
//   class TestFoo : public QObject {
//     Q_OBJECT
//     TESSERA_TEST_FRIEND
//    private slots:
//     void bar();
//   };
//   TESSERA_TEST_MAIN(TestFoo, bar)
//   #ifdef TESSERA_TEST_WITH_QT
//   #include "test_foo.moc"
//   #endif
//
// With Qt, TESSERA_TEST_MAIN checks that the listed functions are exactly the class's test slots,
// so the list cannot silently fall behind the class.
#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>

#include "util/error.h"

// Every core test is one class in one file, compiled into one executable (tessera_core_tests, so
// that unity builds compile the tests in a few translation units): TESSERA_TEST_MAIN registers the
// class under its file's name, and tests/support/test_main.cpp runs the one named by argv[1].
#include <filesystem>
#include <map>

namespace tessera_test {
using TestEntry = int (*)(int argc, char** argv);
inline std::map<std::string, TestEntry>& registered_tests() {
  static std::map<std::string, TestEntry> tests;
  return tests;
}
inline bool register_test(const char* file, TestEntry entry) {
  registered_tests()[std::filesystem::path(file).stem().string()] = entry;
  return true;
}
}  // namespace tessera_test

#ifdef TESSERA_TEST_WITH_QT
#include <QCoreApplication>
#include <QMetaMethod>
#include <QObject>
#include <QSet>
#include <QString>
#include <QStringList>
#include <QtTest>

#define TESSERA_TEST_FRIEND

namespace tessera_test {
inline bool slots_match(const QMetaObject* meta, const char* listed) {
  QSet<QString> declared, named;
  for (int i = meta->methodOffset(); i < meta->methodCount(); ++i) {
    const QMetaMethod m = meta->method(i);
    if (m.methodType() == QMetaMethod::Slot && m.access() == QMetaMethod::Private) {
      const QString name = QString::fromLatin1(m.name());
      if (name != "initTestCase" && name != "cleanupTestCase" && name != "init" && name != "cleanup")
        declared.insert(name);
    }
  }
  for (const QString& n : QString::fromLatin1(listed).split(',', Qt::SkipEmptyParts)) named.insert(n.trimmed());
  if (declared == named) return true;
  qCritical("TESSERA_TEST_MAIN lists [%s] but the class declares other test slots",
            qPrintable(QStringList(named.values()).join(", ")));
  return false;
}
}  // namespace tessera_test

#define TESSERA_TEST_MAIN(Class, ...)                                        \
  static int tessera_test_run_##Class(int argc, char** argv) {               \
    Class tc;                                                                \
    if (!tessera_test::slots_match(tc.metaObject(), #__VA_ARGS__)) return 1; \
    return QTest::qExec(&tc, argc, argv);                                    \
  }                                                                          \
  static const bool tessera_test_registered_##Class = tessera_test::register_test(__FILE__, &tessera_test_run_##Class);

#else  // no Qt: a minimal runner with the same macros

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <type_traits>
#include <utility>
#include <vector>

class QObject {};
#define Q_OBJECT
#define slots
// The runner of each class (TESSERA_TEST_MAIN specializes it) calls its private test functions.
#define TESSERA_TEST_FRIEND \
  template <typename C>     \
  friend int tessera_test::run_class(int, char**);

namespace tessera_test {
template <typename C>
int run_class(int argc, char** argv);
struct State {
  bool failed = false;
  bool skipped = false;
};
inline State& state() {
  static State s;
  return s;
}
inline void report_failure(const std::string& what, const char* file, int line) {
  state().failed = true;
  std::printf("FAIL!  : %s\n   Loc: [%s(%d)]\n", what.c_str(), file, line);
}
template <typename T, typename = void>
struct Streamable : std::false_type {};
template <typename T>
struct Streamable<T, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const T&>())> >
    : std::true_type {};
template <typename T>
void print_value(std::ostream& os, const T& v) {
  if constexpr (Streamable<T>::value)
    os << v;
  else if constexpr (std::is_enum<T>::value)
    os << static_cast<long long>(v);
  else
    os << "<value>";
}
template <typename A, typename B>
bool compare(const A& a, const B& b, const char* sa, const char* sb, const char* file, int line) {
  if (a == b) return true;
  std::ostringstream os;
  os << "Compared values are not the same: " << sa << " = ";
  print_value(os, a);
  os << ", " << sb << " = ";
  print_value(os, b);
  report_failure(os.str(), file, line);
  return false;
}
inline std::vector<std::string> split_names(const char* listed) {
  std::vector<std::string> names;
  std::string cur;
  for (const char* p = listed;; ++p) {
    if (*p == ',' || *p == '\0') {
      std::size_t b = cur.find_first_not_of(" \t\n"), e = cur.find_last_not_of(" \t\n");
      if (b != std::string::npos) names.push_back(cur.substr(b, e - b + 1));
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur.push_back(*p);
    }
  }
  return names;
}
// Runs the test functions named in argv[1..] (all of them when none is named), like QTest::qExec.
template <typename C, typename... M>
int run(int argc, char** argv, const char* class_name, const char* listed, C& tc, M... methods) {
  const auto names = split_names(listed);
  std::vector<void (C::*)()> fns = {methods...};
  const std::vector<std::string> wanted(argv + 1, argv + argc);
  for (const auto& w : wanted)
    if (std::find(names.begin(), names.end(), w) == names.end()) {
      std::printf("%s has no test function %s\n", class_name, w.c_str());
      return 1;
    }
  int passed = 0, failed = 0, skipped = 0;
  std::printf("********* Start testing of %s *********\n", class_name);
  for (std::size_t i = 0; i < fns.size(); ++i) {
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), names[i]) == wanted.end()) continue;
    state() = State{};
    try {
      (tc.*fns[i])();
    } catch (const std::exception& e) {
      report_failure(std::string("unexpected exception: ") + e.what(), class_name, 0);
    }
    const char* verdict = state().failed ? "FAIL!  " : state().skipped ? "SKIP   " : "PASS   ";
    std::printf("%s: %s::%s()\n", verdict, class_name, names[i].c_str());
    if (state().failed)
      ++failed;
    else if (state().skipped)
      ++skipped;
    else
      ++passed;
  }
  std::printf("Totals: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
  std::printf("********* Finished testing of %s *********\n", class_name);
  return failed == 0 ? 0 : 1;
}
}  // namespace tessera_test

#define QVERIFY(cond)                                                                  \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      tessera_test::report_failure("'" #cond "' returned FALSE.", __FILE__, __LINE__); \
      return;                                                                          \
    }                                                                                  \
  } while (0)
#define QVERIFY2(cond, message)                                                                              \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      tessera_test::report_failure(std::string("'" #cond "' returned FALSE. (") + (message) + ")", __FILE__, \
                                   __LINE__);                                                                \
      return;                                                                                                \
    }                                                                                                        \
  } while (0)
#define QCOMPARE(a, b)                                                        \
  do {                                                                        \
    if (!tessera_test::compare((a), (b), #a, #b, __FILE__, __LINE__)) return; \
  } while (0)
#define QFAIL(message)                                                      \
  do {                                                                      \
    tessera_test::report_failure(std::string(message), __FILE__, __LINE__); \
    return;                                                                 \
  } while (0)
#define QSKIP(message)                                          \
  do {                                                          \
    std::printf("SKIP   : %s\n", std::string(message).c_str()); \
    tessera_test::state().skipped = true;                       \
    return;                                                     \
  } while (0)
#define qPrintable(s) (std::string(s).c_str())

// Member pointers for the listed names are produced by TESSERA_TEST_MEMBERS (below).
#define TESSERA_TEST_MAIN(Class, ...)                                                                         \
  template <>                                                                                                 \
  int tessera_test::run_class<Class>(int argc, char** argv) {                                                 \
    Class tc;                                                                                                 \
    return tessera_test::run(argc, argv, #Class, #__VA_ARGS__, tc, TESSERA_TEST_MEMBERS(Class, __VA_ARGS__)); \
  }                                                                                                           \
  static const bool tessera_test_registered_##Class =                                                         \
      tessera_test::register_test(__FILE__, &tessera_test::run_class<Class>);

// Up to 24 test functions per class.
#define TESSERA_TM_1(C, a) &C::a
#define TESSERA_TM_2(C, a, ...) &C::a, TESSERA_TM_1(C, __VA_ARGS__)
#define TESSERA_TM_3(C, a, ...) &C::a, TESSERA_TM_2(C, __VA_ARGS__)
#define TESSERA_TM_4(C, a, ...) &C::a, TESSERA_TM_3(C, __VA_ARGS__)
#define TESSERA_TM_5(C, a, ...) &C::a, TESSERA_TM_4(C, __VA_ARGS__)
#define TESSERA_TM_6(C, a, ...) &C::a, TESSERA_TM_5(C, __VA_ARGS__)
#define TESSERA_TM_7(C, a, ...) &C::a, TESSERA_TM_6(C, __VA_ARGS__)
#define TESSERA_TM_8(C, a, ...) &C::a, TESSERA_TM_7(C, __VA_ARGS__)
#define TESSERA_TM_9(C, a, ...) &C::a, TESSERA_TM_8(C, __VA_ARGS__)
#define TESSERA_TM_10(C, a, ...) &C::a, TESSERA_TM_9(C, __VA_ARGS__)
#define TESSERA_TM_11(C, a, ...) &C::a, TESSERA_TM_10(C, __VA_ARGS__)
#define TESSERA_TM_12(C, a, ...) &C::a, TESSERA_TM_11(C, __VA_ARGS__)
#define TESSERA_TM_13(C, a, ...) &C::a, TESSERA_TM_12(C, __VA_ARGS__)
#define TESSERA_TM_14(C, a, ...) &C::a, TESSERA_TM_13(C, __VA_ARGS__)
#define TESSERA_TM_15(C, a, ...) &C::a, TESSERA_TM_14(C, __VA_ARGS__)
#define TESSERA_TM_16(C, a, ...) &C::a, TESSERA_TM_15(C, __VA_ARGS__)
#define TESSERA_TM_17(C, a, ...) &C::a, TESSERA_TM_16(C, __VA_ARGS__)
#define TESSERA_TM_18(C, a, ...) &C::a, TESSERA_TM_17(C, __VA_ARGS__)
#define TESSERA_TM_19(C, a, ...) &C::a, TESSERA_TM_18(C, __VA_ARGS__)
#define TESSERA_TM_20(C, a, ...) &C::a, TESSERA_TM_19(C, __VA_ARGS__)
#define TESSERA_TM_21(C, a, ...) &C::a, TESSERA_TM_20(C, __VA_ARGS__)
#define TESSERA_TM_22(C, a, ...) &C::a, TESSERA_TM_21(C, __VA_ARGS__)
#define TESSERA_TM_23(C, a, ...) &C::a, TESSERA_TM_22(C, __VA_ARGS__)
#define TESSERA_TM_24(C, a, ...) &C::a, TESSERA_TM_23(C, __VA_ARGS__)
#define TESSERA_TM_COUNT(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, \
                         _21, _22, _23, _24, N, ...)                                                                \
  N
#define TESSERA_TM_CAT(a, b) a##b
#define TESSERA_TM_PICK(n) TESSERA_TM_CAT(TESSERA_TM_, n)
#define TESSERA_TEST_MEMBERS(C, ...)                                                                                 \
  TESSERA_TM_PICK(TESSERA_TM_COUNT(__VA_ARGS__, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, \
                                   6, 5, 4, 3, 2, 1))                                                                \
  (C, __VA_ARGS__)

#endif  // TESSERA_TEST_WITH_QT

// Checks that `statement` throws tessera::Error (or a subclass) whose message contains `needle`:
// errors must say what is wrong, not merely happen.
#define TESSERA_VERIFY_THROWS_WITH(statement, needle)                                                \
  do {                                                                                               \
    bool tessera_thrown = false;                                                                     \
    std::string tessera_message;                                                                     \
    try {                                                                                            \
      statement;                                                                                     \
    } catch (const tessera::Error& e) {                                                              \
      tessera_thrown = true;                                                                         \
      tessera_message = e.what();                                                                    \
    }                                                                                                \
    QVERIFY2(tessera_thrown, "expected a tessera::Error from: " #statement);                         \
    QVERIFY2(tessera_message.find(needle) != std::string::npos,                                      \
             ("message \"" + tessera_message + "\" does not mention \"" + (needle) + "\"").c_str()); \
  } while (0)

// |a - b| <= tol * max(|a|, |b|)
#define TESSERA_COMPARE_RELATIVE(a, b, tol)                                                                         \
  do {                                                                                                              \
    const double tessera_a = (a), tessera_b = (b);                                                                  \
    const double tessera_scale = std::max(std::fabs(tessera_a), std::fabs(tessera_b));                              \
    QVERIFY2(                                                                                                       \
        std::fabs(tessera_a - tessera_b) <= (tol)*tessera_scale,                                                    \
        (std::to_string(tessera_a) + " vs " + std::to_string(tessera_b) + " differ by more than " #tol " relative") \
            .c_str());                                                                                              \
  } while (0)
