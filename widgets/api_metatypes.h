#pragma once
// The core's job types as Qt metatypes, so that they travel through queued signals and QSignalSpy
// (which stores arguments in QVariants).
#include <QMetaType>

#include "api/job_types.h"

Q_DECLARE_METATYPE(tessera::api::ModelSummary)
Q_DECLARE_METATYPE(tessera::api::EvalRequest)
Q_DECLARE_METATYPE(tessera::api::EvalReport)
Q_DECLARE_METATYPE(tessera::api::EvalProgress)
