#pragma once
// QString to the UTF-8 std::string that core's settings, paths and messages use.
#include <QString>
#include <string>

namespace tessera::widgets {

inline std::string utf8(const QString& s) { return s.toUtf8().toStdString(); }

}  // namespace tessera::widgets
