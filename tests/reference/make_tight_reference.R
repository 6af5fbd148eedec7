# lme4 fits of the shared reference cases (cases.json) with bobyqa run to rhoend = 1e-12, so that
# the optimum is known to more digits than lme4's default stopping rule gives.
#
#   Rscript tests/reference/make_tight_reference.R [OUT.json [CASES.json]]
#
# OUT defaults to lme4_tight.json next to this script. The case list is the one of the shared
# cases.json (dataset, formula, REML, family, nAGQ, weights per case), made by cases_public.R; it is
# written out below so that the script runs without it. If CASES.json is given, the cases are
# taken from it instead, and its (lme4-default) objective is recorded next to the tight one.
# Data are read from the repo's CSV files (this script's data/ folder, then
# src/mixedfx/datasets/data), factor levels from NAME.schema.json; a case whose data file is not in
# the repo is skipped and listed under `skipped`.
#
# Controls: lmer: lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5));
#           glmer: glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
#                               tolPwrss = 1e-12)  (bobyqa in both stages).
suppressMessages({library(lme4); library(jsonlite)})

script_dir <- local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f)) dirname(normalizePath(f[1])) else getwd()
})
args <- commandArgs(TRUE)
out_file <- if (length(args) >= 1) args[1] else file.path(script_dir, "lme4_tight.json")
cases_file <- if (length(args) >= 2) args[2] else NULL
data_dirs <- c(file.path(script_dir, "data"),
               file.path(script_dir, "..", "..", "src", "mixedfx", "datasets", "data"))

find_data <- function(name) {
  dir <- data_dirs[file.exists(file.path(data_dirs, paste0(name, ".csv"))) &
                   file.exists(file.path(data_dirs, paste0(name, ".schema.json")))]
  if (length(dir)) dir[1] else NULL
}
read_data <- function(name) {
  dir <- find_data(name)
  schema <- fromJSON(file.path(dir, paste0(name, ".schema.json")), simplifyVector = FALSE)
  cls <- vapply(schema$columns, function(cl) if (cl$type %in% c("factor", "string")) "character" else NA_character_, "")
  names(cls) <- vapply(schema$columns, function(cl) cl$name, "")
  d <- read.csv(file.path(dir, paste0(name, ".csv")), colClasses = cls, stringsAsFactors = FALSE)
  for (cl in schema$columns) if (cl$type == "factor") d[[cl$name]] <- factor(d[[cl$name]], levels = unlist(cl$levels))
  root <- normalizePath(file.path(script_dir, "..", ".."))
  attr(d, "csv") <- sub(paste0("^", root, "/"), "", normalizePath(file.path(dir, paste0(name, ".csv"))))
  d
}

# the cases of the shared cases.json (see cases_public.R)
L <- function(id, data, formula, REML = TRUE, family = NULL, nAGQ = 1, weights = NULL)
  list(id = id, dataset = data, formula = formula, REML = if (is.null(family)) REML else FALSE,
       family = if (is.null(family)) "gaussian" else family, nAGQ = nAGQ, weights = weights)
cases <- list(
  L("sleepstudy_slope_reml", "sleepstudy", "Reaction ~ Days + (Days | Subject)"),
  L("sleepstudy_slope_ml", "sleepstudy", "Reaction ~ Days + (Days | Subject)", REML = FALSE),
  L("sleepstudy_uncorr", "sleepstudy", "Reaction ~ Days + (Days || Subject)"),
  L("sleepstudy_intercept", "sleepstudy", "Reaction ~ Days + (1 | Subject)"),
  L("sleepstudy_noint_re", "sleepstudy", "Reaction ~ Days + (0 + Days | Subject)"),
  L("dyestuff_reml", "Dyestuff", "Yield ~ 1 + (1 | Batch)"),
  L("dyestuff_ml", "Dyestuff", "Yield ~ 1 + (1 | Batch)", REML = FALSE),
  L("dyestuff2_singular", "Dyestuff2", "Yield ~ 1 + (1 | Batch)"),
  L("penicillin_crossed", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  L("pastes_nested_slash", "Pastes", "strength ~ 1 + (1 | batch/cask)"),
  L("pastes_nested_colon", "Pastes", "strength ~ 1 + (1 | batch) + (1 | batch:cask)", REML = FALSE),
  L("cake_factorial", "cake", "angle ~ recipe * temperature + (1 | recipe:replicate)"),
  L("insteval_full_ml", "InstEval", "y ~ 1 + service * dept + (1 | s) + (1 | d) + (1 | dept:service)", REML = FALSE),
  L("insteval_small_ml", "InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", REML = FALSE),
  L("cbpp_binomial", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", family = "binomial"),
  L("cbpp_binomial_agq", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", family = "binomial", nAGQ = 9),
  L("grouseticks_poisson", "grouseticks", "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", family = "poisson"),
  L("verbagg_binomial", "VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", family = "binomial")
)
default_objective <- list()
if (!is.null(cases_file)) {
  cj <- fromJSON(cases_file, simplifyVector = FALSE)
  cases <- lapply(cj, function(cs) {
    default_objective[[cs$id]] <<- cs$objective
    list(id = cs$id, dataset = cs$dataset, formula = cs$formula, REML = isTRUE(cs$REML),
         family = if (is.null(cs$family)) "gaussian" else cs$family,
         nAGQ = if (is.null(cs$nAGQ)) 1 else cs$nAGQ, weights = cs$weights)
  })
}
# not in cases.json: nlme's Machines with an unstructured 3x3 Worker covariance
# (data/Machines.csv is written by make_issue14_reference.R)
cases[[length(cases) + 1]] <- L("machines_unstructured_reml", "Machines", "score ~ Machine + (0 + Machine | Worker)")

lctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
gctl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5), tolPwrss = 1e-12)

fit_case <- function(cs) {
  d <- read_data(cs$dataset)
  f <- as.formula(cs$formula)
  w <- if (!is.null(cs$weights)) d[[cs$weights]] else NULL
  warns <- character(0)
  t0 <- proc.time()[["elapsed"]]
  m <- withCallingHandlers({
    if (cs$family == "gaussian") {
      if (is.null(w)) lmer(f, data = d, REML = cs$REML, control = lctl)
      else lmer(f, data = d, REML = cs$REML, weights = w, control = lctl)
    } else {
      fam <- get(cs$family)()
      if (is.null(w)) glmer(f, data = d, family = fam, nAGQ = cs$nAGQ, control = gctl)
      else glmer(f, data = d, family = fam, nAGQ = cs$nAGQ, weights = w, control = gctl)
    }
  }, warning = function(x) { warns <<- c(warns, conditionMessage(x)); invokeRestart("muffleWarning") },
     message = function(x) { warns <<- c(warns, trimws(conditionMessage(x))); invokeRestart("muffleMessage") })
  secs <- proc.time()[["elapsed"]] - t0
  # for nAGQ > 1 lme4's logLik leaves out the saturated model's log-likelihood: add it back
  # (as the shared cases.json does), so that the objective is the true -2 log-likelihood
  agq_shift <- 0
  if (cs$family != "gaussian" && cs$nAGQ > 1) {
    fam <- family(m)
    agq_shift <- fam$aic(m@resp$y, m@resp$n, m@resp$y, m@resp$weights, 0)
  }
  obj <- if (isREML(m)) unname(REMLcrit(m)) else -2 * as.numeric(logLik(m)) + agq_shift
  cf <- summary(m)$coefficients
  res <- list(
    id = cs$id, dataset = cs$dataset, data_csv = attr(d, "csv"), formula = cs$formula,
    REML = isREML(m), family = cs$family, nAGQ = cs$nAGQ, weights = cs$weights,
    nobs = nobs(m), ngroups = as.list(ngrps(m)),
    objective = obj,
    objective_kind = if (isREML(m)) "REML criterion (-2 REML log-likelihood)"
                     else if (cs$family == "gaussian") "deviance (-2 log-likelihood)"
                     else "-2 log-likelihood (Laplace/AGQ approximation)",
    objective_lme4_agq_scale = if (agq_shift != 0) -2 * as.numeric(logLik(m)) else NULL,
    objective_default_fit = default_objective[[cs$id]],
    objective_minus_default = if (!is.null(default_objective[[cs$id]])) obj - default_objective[[cs$id]] else NULL,
    theta = I(unname(getME(m, "theta"))), theta_names = I(names(getME(m, "theta"))),
    sigma = sigma(m),
    singular = isSingular(m),
    fixef = list(names = I(names(fixef(m))), estimate = I(unname(fixef(m))),
                 std_error = I(unname(cf[, "Std. Error"]))),
    optimizer = paste(m@optinfo$optimizer, collapse = ","),
    feval = m@optinfo$feval,
    optimizer_message = if (is.null(m@optinfo$message)) "" else m@optinfo$message,
    convergence_messages = I(as.character(m@optinfo$conv$lme4$messages)),
    warnings = I(unique(warns)),
    seconds = secs)
  res
}

results <- list(); skipped <- list()
for (cs in cases) {
  if (is.null(find_data(cs$dataset))) {
    cat("skipping", cs$id, "(no data file for", cs$dataset, "in the repo)\n")
    skipped[[length(skipped) + 1]] <- list(id = cs$id, dataset = cs$dataset, reason = "data file not in the repo")
    next
  }
  cat("fitting", cs$id, "\n")
  r <- tryCatch(fit_case(cs), error = function(e) {
    cat("  failed:", conditionMessage(e), "\n")
    skipped[[length(skipped) + 1]] <<- list(id = cs$id, dataset = cs$dataset, reason = paste("lme4 error:", conditionMessage(e)))
    NULL
  })
  if (!is.null(r)) results[[length(results) + 1]] <- r
}
out <- list(
  note = paste("lme4 refits of the shared reference cases with bobyqa to rhoend = 1e-12",
               "(lmerControl(optimizer = 'bobyqa', optCtrl = list(rhoend = 1e-12, maxfun = 1e5));",
               "glmer: glmerControl(optimizer = 'bobyqa' (both stages), same optCtrl, tolPwrss = 1e-12)).",
               "objective: REMLcrit for REML fits, else -2 logLik (for nAGQ > 1 with the saturated",
               "term added back, as in cases.json). Fixed-effect SEs are lme4's (Hessian-based for glmer).",
               "Made by tests/reference/make_tight_reference.R"),
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  Matrix = as.character(packageVersion("Matrix")), jsonlite = as.character(packageVersion("jsonlite"))),
  cases_source = if (is.null(cases_file)) "case list written in the script (= cases_public.R)" else "cases.json",
  cases = results,
  skipped = skipped)
write_json(out, out_file, auto_unbox = TRUE, pretty = TRUE, digits = NA, na = "null", null = "null")
cat("wrote", out_file, "with", length(results), "cases;", length(skipped), "skipped\n")
