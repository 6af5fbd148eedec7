# R reference values for issue 14: glmer.nb, emmeans, performance (r2_nakagawa, icc), lmList,
# rePCA and broom.mixed (tidy, glance).
#
#   Rscript tests/reference/make_issue14_reference.R [OUT.json]
#
# Default output: issue14.json next to this script. Data are read from the CSV files of the repo
# (this script's data/ folder, then src/mixedfx/datasets/data), factor levels from NAME.schema.json.
# Data sets that the repo did not have (glmmTMB's Salamanders, nlme's Machines and Orthodont) are
# written into data/ from the R packages the first time (ordered factors become plain factors,
# level order kept), then read back from the CSV like the others, so the CSV is exactly what R fitted.
# Needs Debian's r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-emmeans r-cran-performance
# r-cran-broom.mixed r-cran-glmmtmb r-cran-nlme r-cran-mass r-cran-jsonlite.
suppressMessages({
  library(lme4); library(jsonlite); library(emmeans); library(performance); library(broom.mixed)
})

script_dir <- local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f)) dirname(normalizePath(f[1])) else getwd()
})
args <- commandArgs(TRUE)
out_file <- if (length(args)) args[1] else file.path(script_dir, "issue14.json")
data_dirs <- c(file.path(script_dir, "data"),
               file.path(script_dir, "..", "..", "src", "mixedfx", "datasets", "data"))

## ---------------------------------------------------------------------------------------------
## data
## ---------------------------------------------------------------------------------------------
export_data <- function(d, name, note) {
  dir <- data_dirs[1]
  dir.create(dir, showWarnings = FALSE, recursive = TRUE)
  csv <- file.path(dir, paste0(name, ".csv"))
  write.csv(d, csv, row.names = FALSE, na = "")
  schema <- lapply(names(d), function(v) {
    x <- d[[v]]
    if (is.factor(x)) list(name = v, type = "factor", levels = levels(x))
    else if (is.logical(x)) list(name = v, type = "logical")
    else if (is.numeric(x)) list(name = v, type = if (all(is.na(x) | x == round(x))) "integer" else "numeric")
    else list(name = v, type = "string")
  })
  write_json(list(name = name, nrow = nrow(d), columns = schema, note = note),
             file.path(dir, paste0(name, ".schema.json")), auto_unbox = TRUE, pretty = TRUE)
  cat("wrote data/", name, ".csv\n", sep = "")
}

# write a package's data set into data/ unless some data folder already has it
ensure_data <- function(pkg, name) {
  if (any(file.exists(file.path(data_dirs, paste0(name, ".csv"))))) return(invisible())
  e <- new.env(); data(list = name, package = pkg, envir = e); d <- as.data.frame(e[[name]])
  attr(d, "formula") <- NULL; attr(d, "labels") <- NULL; attr(d, "units") <- NULL
  for (v in names(d)) if (is.ordered(d[[v]])) d[[v]] <- factor(as.character(d[[v]]), levels = levels(d[[v]]))
  export_data(d, name, sprintf("%s's data set %s; ordered factors turned into plain factors (level order kept; first level is the reference). Written by tests/reference/make_issue14_reference.R", pkg, name))
}

read_data <- function(name) {
  dir <- data_dirs[file.exists(file.path(data_dirs, paste0(name, ".csv")))][1]
  if (is.na(dir)) stop("no data file for ", name)
  schema <- fromJSON(file.path(dir, paste0(name, ".schema.json")), simplifyVector = FALSE)
  cls <- vapply(schema$columns, function(cl) if (cl$type %in% c("factor", "string")) "character" else NA_character_, "")
  names(cls) <- vapply(schema$columns, function(cl) cl$name, "")
  d <- read.csv(file.path(dir, paste0(name, ".csv")), colClasses = cls, stringsAsFactors = FALSE)
  for (cl in schema$columns) if (cl$type == "factor") d[[cl$name]] <- factor(d[[cl$name]], levels = unlist(cl$levels))
  attr(d, "csv") <- normalizePath(file.path(dir, paste0(name, ".csv")))
  d
}
data_path <- function(d) {
  p <- attr(d, "csv"); root <- normalizePath(file.path(script_dir, "..", ".."))
  sub(paste0("^", root, "/"), "", p)
}

ensure_data("glmmTMB", "Salamanders")
ensure_data("nlme", "Machines")
ensure_data("nlme", "Orthodont")

sleepstudy <- read_data("sleepstudy")
Penicillin <- read_data("Penicillin")
cake <- read_data("cake")
cbpp <- read_data("cbpp")
grouseticks <- read_data("grouseticks")
Salamanders <- read_data("Salamanders")
Machines <- read_data("Machines")
Orthodont <- read_data("Orthodont")

## ---------------------------------------------------------------------------------------------
## helpers
## ---------------------------------------------------------------------------------------------
# Evaluate expr, collecting warnings and messages (as strings) instead of printing them.
capture <- function(expr, catch_errors = FALSE) {
  warns <- character(0); msgs <- character(0); err <- NULL
  val <- withCallingHandlers(
    if (catch_errors) tryCatch(expr, error = function(e) { err <<- conditionMessage(e); NULL }) else expr,
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") })
  list(value = val, warnings = I(unique(warns)), messages = I(unique(msgs)), error = err)
}
chr <- function(x) I(as.character(x))
num <- function(x) { x <- as.numeric(x); x[!is.finite(x)] <- NA; I(x) }
# a data frame as {columns: [...], nrow, data: {col: [...]}}; factors -> strings, NA/Inf -> null
# (except +-Inf, written as the strings "Inf" / "-Inf", e.g. emmeans' asymptotic df)
table_json <- function(d) {
  d <- as.data.frame(d)
  out <- list(columns = I(names(d)), nrow = nrow(d), data = list())
  for (v in names(d)) {
    x <- d[[v]]
    out$data[[v]] <- if (is.factor(x) || is.character(x)) I(as.character(x))
                     else if (is.logical(x)) I(x)
                     else if (is.numeric(x) && any(is.infinite(x))) lapply(x, function(z) if (is.infinite(z)) (if (z > 0) "Inf" else "-Inf") else z)
                     else num(x)
  }
  out
}
fixef_json <- function(m) {
  cf <- summary(m)$coefficients
  list(names = I(rownames(cf)), estimate = num(cf[, 1]), std_error = num(cf[, 2]),
       statistic = num(cf[, 3]), p_value = if (ncol(cf) >= 4) num(cf[, 4]) else NULL)
}
model_json <- function(m, formula, data_name, control_note) {
  list(formula = formula, dataset = data_name, control = control_note,
       family = family(m)$family, link = family(m)$link, nobs = nobs(m),
       objective = if (isREML(m)) unname(REMLcrit(m)) else -2 * as.numeric(logLik(m)),
       objective_kind = if (isREML(m)) "REML criterion" else "-2 log-likelihood (Laplace for GLMMs)",
       theta = num(getME(m, "theta")), theta_names = I(names(getME(m, "theta"))),
       sigma = sigma(m), fixef = fixef_json(m),
       vcov = unname(as.matrix(vcov(m))),
       convergence_messages = chr(m@optinfo$conv$lme4$messages))
}

ctl_g_tight <- glmerControl(tolPwrss = 1e-12, optimizer = c("bobyqa", "bobyqa"), optCtrl = list(maxfun = 1e5))
ctl_g_tight_note <- "glmerControl(tolPwrss = 1e-12, optimizer = c('bobyqa', 'bobyqa'), optCtrl = list(maxfun = 1e5)) (PIRLS converged, as in glmm_tight.json)"

## ---------------------------------------------------------------------------------------------
## a. glmer.nb
## ---------------------------------------------------------------------------------------------
nb_fit_json <- function(fit) {
  if (!is.null(fit$error)) return(list(error = fit$error, warnings = fit$warnings))
  m <- fit$value
  fam_line <- grep("Family:", capture.output(summary(m)), value = TRUE)
  list(minus2logLik = -2 * as.numeric(logLik(m)), deviance_lme4 = unname(deviance(m)),
       AIC = AIC(m), logLik_df = attr(logLik(m), "df"),
       nb_theta = unname(getME(m, "glmer.nb.theta")),
       theta = num(getME(m, "theta")), theta_names = I(names(getME(m, "theta"))),
       fixef = fixef_json(m), vcov = unname(as.matrix(vcov(m))),
       family = family(m)$family, family_line = trimws(fam_line),
       warnings = fit$warnings, convergence_messages = chr(m@optinfo$conv$lme4$messages))
}

# Negative binomial by profiling theta ourselves: optimize() over log(theta) of the Laplace
# deviance of glmer(family = negative.binomial(theta)) fitted tightly. (lme4 1.1.31's glmer.nb
# passes its `tol` on to glmer, which rejects it, so its theta tolerance can't be tightened.)
nb_profile_tight <- function(formula, data, interval) {
  ctl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5), tolPwrss = 1e-10)
  dev_at <- function(lt) -2 * as.numeric(logLik(suppressWarnings(suppressMessages(
    glmer(formula, data = data, family = MASS::negative.binomial(theta = exp(lt)), control = ctl)))))
  o <- optimize(dev_at, interval, tol = 1e-9)
  fit <- capture(glmer(formula, data = data, family = MASS::negative.binomial(theta = exp(o$minimum)), control = ctl))
  m <- fit$value
  list(warnings = fit$warnings, convergence_messages = chr(m@optinfo$conv$lme4$messages),note = paste("theta profiled with optimize(tol = 1e-9) over log(theta); inner glmer with",
                    "glmerControl(optimizer = 'bobyqa', optCtrl = list(rhoend = 1e-10), tolPwrss = 1e-10);",
                    "the SEs are those of the glmer at fixed theta"),
       minus2logLik = -2 * as.numeric(logLik(m)), nb_theta = exp(o$minimum),
       theta = num(getME(m, "theta")), fixef = fixef_json(m))
}

nb_case <- function(id, data_name, formula, data, nb_fixed_theta = 1.5) {
  cat("glmer.nb", id, "\n")
  f <- as.formula(formula)
  def <- capture(glmer.nb(f, data = data))
  bq <- capture(glmer.nb(f, data = data, control = glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10))),
                catch_errors = TRUE)
  res <- list(id = id, dataset = data_name, data_csv = data_path(data), formula = formula, nobs = nobs(def$value),
              ngroups = as.list(ngrps(def$value)),
              default = nb_fit_json(def),
              bobyqa = nb_fit_json(bq))
  res$bobyqa$control <- "glmer.nb(..., control = glmerControl(optimizer = 'bobyqa', optCtrl = list(rhoend = 1e-10)))"
  res$bobyqa_lower_deviance <- if (is.null(bq$error)) res$bobyqa$minus2logLik < res$default$minus2logLik else NA
  th <- res$default$nb_theta
  res$profile_tight <- nb_profile_tight(f, data, log(th) + c(-1, 1))
  fx <- capture(glmer(f, data = data, family = MASS::negative.binomial(theta = nb_fixed_theta)))
  fxt <- capture(glmer(f, data = data, family = MASS::negative.binomial(theta = nb_fixed_theta), control = ctl_g_tight))
  fixed_json <- function(fit, ctl) {
    m <- fit$value
    list(control = ctl, minus2logLik = -2 * as.numeric(logLik(m)), theta = num(getME(m, "theta")),
         fixef = fixef_json(m), vcov = unname(as.matrix(vcov(m))),
         family = family(m)$family, warnings = fit$warnings,
         convergence_messages = chr(m@optinfo$conv$lme4$messages))
  }
  res$fixed_theta <- list(nb_theta = nb_fixed_theta,
                          call = sprintf("glmer(%s, family = MASS::negative.binomial(theta = %s))", formula, nb_fixed_theta),
                          default = fixed_json(fx, "lme4 default glmerControl()"),
                          tight = fixed_json(fxt, ctl_g_tight_note))
  res
}

nb_models <- list()
glmer_nb <- list(
  nb_case("grouseticks_cHEIGHT", "grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD)", grouseticks),
  nb_case("grouseticks_HEIGHT", "grouseticks", "TICKS ~ YEAR + HEIGHT + (1 | BROOD)", grouseticks),
  nb_case("salamanders", "Salamanders", "count ~ mined + spp + (1 | site)", Salamanders)
)
glmer_nb_note <- paste(
  "minus2logLik = -2 logLik (Laplace). nb_theta = getME(m, 'glmer.nb.theta') (the NB shape);",
  "theta = lme4's random-effect parameter. family_line is the 'Family:' line that summary() prints.",
  "grouseticks: cHEIGHT is HEIGHT centred (column of lme4's data set); the raw-HEIGHT fit gives",
  "lme4 warnings (large eigenvalue / max|grad|), the centred one does not. bobyqa = the same",
  "glmer.nb call with control = glmerControl(optimizer = 'bobyqa', optCtrl = list(rhoend = 1e-10));",
  "bobyqa_lower_deviance tells whether it reached a lower -2 logLik than the default.",
  "profile_tight: theta profiled by us to high precision (best available optimum).",
  "fixed_theta: glmer with family = MASS::negative.binomial(theta = 1.5), default and tight control.")

## ---------------------------------------------------------------------------------------------
## b. emmeans
## ---------------------------------------------------------------------------------------------
emm_json <- function(e) {
  s <- capture(summary(e))
  out <- table_json(as.data.frame(s$value))
  out$mesg <- chr(attr(s$value, "mesg"))
  out$warnings <- s$warnings
  out$messages <- s$messages
  out
}
pairs_json <- function(e, adjust) {
  p <- capture(pairs(e, adjust = adjust))
  emm_json(p$value)
}
adjusts <- c("tukey", "bonferroni", "holm", "none")

lmer_emm_case <- function(id, data_name, formula, data, specs) {
  cat("emmeans", id, "\n")
  fit <- capture(lme4::lmer(as.formula(formula), data = data, REML = TRUE))
  m <- fit$value
  res <- list(id = id, model = model_json(m, formula, data_name, "lme4 default lmerControl()"),
              data_csv = data_path(data), fit_warnings = fit$warnings, specs = list())
  for (sp in specs) {
    r <- list(call = sp$call, by = sp$by, dfs = list())
    for (dfm in c("kenward-roger", "satterthwaite", "asymptotic")) {
      e <- capture(if (is.null(sp$by)) emmeans(m, sp$specs, lmer.df = dfm) else emmeans(m, sp$specs, by = sp$by, lmer.df = dfm))
      pr <- list()
      for (a in adjusts) pr[[a]] <- pairs_json(e$value, a)
      r$dfs[[dfm]] <- list(emmeans = emm_json(e$value), emmeans_messages = e$messages,
                           emmeans_warnings = e$warnings, pairs = pr)
    }
    res$specs[[sp$id]] <- r
  }
  res
}

emm_machines <- lmer_emm_case("machines", "Machines", "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", Machines,
  list(list(id = "Machine", specs = "Machine", by = NULL, call = "emmeans(m, 'Machine', lmer.df = DF)")))
emm_cake <- lmer_emm_case("cake", "cake", "angle ~ recipe * temperature + (1 | recipe:replicate)", cake,
  list(list(id = "recipe_by_temperature", specs = "recipe", by = "temperature",
            call = "emmeans(m, 'recipe', by = 'temperature', lmer.df = DF)"),
       list(id = "recipe", specs = ~ recipe, by = NULL, call = "emmeans(m, ~ recipe, lmer.df = DF)  (averaged over temperature)")))

emm_cbpp <- local({
  cat("emmeans cbpp\n")
  formula <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
  fit <- capture(glmer(as.formula(formula), data = cbpp, family = binomial, control = ctl_g_tight))
  g <- fit$value
  e_link <- emmeans(g, "period")
  e_resp <- emmeans(g, "period", type = "response")
  pl <- list(); for (a in adjusts) pl[[a]] <- pairs_json(e_link, a)
  prr <- list(); for (a in adjusts) prr[[a]] <- pairs_json(e_resp, a)
  list(id = "cbpp", model = model_json(g, formula, "cbpp", ctl_g_tight_note), data_csv = data_path(cbpp),
       fit_warnings = fit$warnings,
       emmeans_link = emm_json(e_link), emmeans_response = emm_json(e_resp),
       pairs_link = pl, pairs_response = prr,
       note = paste("emmeans(g, 'period') (link = logit scale) and emmeans(g, 'period', type = 'response')",
                    "(prob); pairs of the link-scale grid are log-odds differences, pairs of the",
                    "response grid are odds ratios (emmeans back-transforms the contrasts). df = Inf",
                    "(written as the string 'Inf'). SEs come from vcov(g), lme4's Hessian-based default."))
})
emmeans_note <- paste(
  "Tables are summary() of emmeans / pairs as data frames: {columns, nrow, data: {column: values}}",
  "plus emmeans' annotation lines (mesg). lmer models fitted with lme4::lmer (REML); for each spec",
  "the three lmer.df methods are given, and pairs() with each adjust. Machines: nlme's data",
  "(data/Machines.csv); cake: temperature is the 6-level factor.")

## ---------------------------------------------------------------------------------------------
## c. performance::r2_nakagawa, icc
## ---------------------------------------------------------------------------------------------
perf_case <- function(id, m, formula, data_name, control_note) {
  cat("performance", id, "\n")
  r2 <- capture(r2_nakagawa(m))
  ic <- capture(icc(m))
  gv <- capture(insight::get_variance(m))
  v <- gv$value
  list(id = id, model = model_json(m, formula, data_name, control_note),
       r2_marginal = unname(r2$value$R2_marginal), r2_conditional = unname(r2$value$R2_conditional),
       r2_warnings = r2$warnings, r2_messages = r2$messages,
       icc_adjusted = ic$value$ICC_adjusted, icc_unadjusted = ic$value$ICC_unadjusted,
       icc_conditional = ic$value$ICC_conditional,
       icc_warnings = ic$warnings, icc_messages = ic$messages,
       get_variance = lapply(v, function(x) if (is.null(names(x))) unname(x) else as.list(x)))
}
perf <- list()
local({
  f <- "Reaction ~ Days + (Days | Subject)"
  perf[["sleepstudy"]] <<- perf_case("sleepstudy", lme4::lmer(as.formula(f), sleepstudy), f, "sleepstudy", "lme4 default lmerControl(), REML")
  f <- "diameter ~ 1 + (1 | plate) + (1 | sample)"
  perf[["penicillin"]] <<- perf_case("penicillin", lme4::lmer(as.formula(f), Penicillin), f, "Penicillin", "lme4 default lmerControl(), REML")
  f <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
  perf[["cbpp_binomial"]] <<- perf_case("cbpp_binomial", glmer(as.formula(f), cbpp, family = binomial, control = ctl_g_tight), f, "cbpp", ctl_g_tight_note)
  f <- "TICKS ~ YEAR + cHEIGHT + (1 | BROOD)"
  perf[["grouseticks_poisson"]] <<- perf_case("grouseticks_poisson", glmer(as.formula(f), grouseticks, family = poisson, control = ctl_g_tight), f, "grouseticks", ctl_g_tight_note)
  gnb <- suppressWarnings(glmer.nb(as.formula(f), data = grouseticks))
  perf[["grouseticks_nb"]] <<- perf_case("grouseticks_nb", gnb, f, "grouseticks", "glmer.nb default")
  perf[["grouseticks_nb"]]$model$nb_theta <<- unname(getME(gnb, "glmer.nb.theta"))
  f <- "count ~ mined + spp + (1 | site)"
  snb <- suppressWarnings(glmer.nb(as.formula(f), data = Salamanders))
  perf[["salamanders_nb"]] <<- perf_case("salamanders_nb", snb, f, "Salamanders", "glmer.nb default")
  perf[["salamanders_nb"]]$model$nb_theta <<- unname(getME(snb, "glmer.nb.theta"))
})
performance_note <- paste(
  "performance::r2_nakagawa(m) and performance::icc(m) (defaults), with insight::get_variance(m)",
  "(var.fixed, var.random, var.residual, var.distribution, var.dispersion, var.intercept, var.slope...)",
  "that they are built from. For Poisson/NB, performance's distribution-specific variance refits",
  "the null model (random intercepts only) internally. Warnings emitted by performance are kept.")

## ---------------------------------------------------------------------------------------------
## d. lmList
## ---------------------------------------------------------------------------------------------
lmlist_case <- function(id, formula, data, data_name) {
  cat("lmList", id, "\n")
  l <- lmList(as.formula(formula), data = data)
  cf <- coef(l)
  ci_json <- function(ci) {
    dn <- dimnames(ci)
    out <- list(groups = I(dn[[1]]), bounds = I(dn[[2]]), coefficients = I(dn[[3]]), lower = list(), upper = list())
    for (k in dn[[3]]) { out$lower[[k]] <- num(ci[, 1, k]); out$upper[[k]] <- num(ci[, 2, k]) }
    out
  }
  ci_default <- confint(l)
  ci_pool <- confint(l, pool = TRUE)
  psd <- lme4:::pooledSD(l)
  s <- summary(l)
  list(id = id, formula = formula, dataset = data_name, data_csv = data_path(data),
       call = sprintf("lme4::lmList(%s, data)", formula),
       coef = c(list(groups = I(rownames(cf))), lapply(as.list(cf), num)),
       coef_names = I(colnames(cf)),
       group_sigma = num(vapply(l, function(x) summary(x)$sigma, 0)),
       group_df_residual = num(vapply(l, function(x) x$df.residual, 0)),
       pooled_sigma = unname(sigma(l)), pooled_df = attr(psd, "df"),
       confint_default = ci_json(ci_default),
       confint_pool = ci_json(ci_pool),
       summary_se_pooled = lapply(setNames(dimnames(s$coefficients)[[3]], dimnames(s$coefficients)[[3]]),
                                  function(k) num(s$coefficients[, 2, k])))
}
lmlists <- list(
  sleepstudy = lmlist_case("sleepstudy", "Reaction ~ Days | Subject", sleepstudy, "sleepstudy"),
  orthodont = lmlist_case("orthodont", "distance ~ age | Subject", Orthodont, "Orthodont"),
  cake_by_recipe = lmlist_case("cake_by_recipe", "angle ~ temp | recipe", cake, "cake")
)
lmlist_note <- paste(
  "coef(lmList): one lm per group (groups in factor-level order). confint_default = confint(l):",
  "in lme4 1.1.31 this uses each group's own lm (its own sigma and residual df), because",
  "confint.lmList4 looks for object$pool, which is NULL for an lmList4. confint_pool =",
  "confint(l, pool = TRUE): coef +- qt(0.975, pooled_df) * pooled_sigma * sqrt(diag(XtX^-1)).",
  "pooled_sigma = sigma(l) = sqrt(sum RSS / sum residual df), pooled_df = sum residual df.",
  "summary_se_pooled: summary(l)'s Std. Error (pooled sigma). Orthodont: nlme's data (data/Orthodont.csv).")

## ---------------------------------------------------------------------------------------------
## e. rePCA
## ---------------------------------------------------------------------------------------------
repca_case <- function(id, formula, data, data_name) {
  cat("rePCA", id, "\n")
  fit <- capture(lme4::lmer(as.formula(formula), data = data, REML = TRUE))
  m <- fit$value
  p <- rePCA(m)
  terms <- lapply(names(p), function(g) {
    x <- p[[g]]
    v <- x$sdev^2
    list(group = g, sdev = num(x$sdev), proportion_of_variance = num(v / sum(v)),
         cumulative_proportion = num(cumsum(v) / sum(v)), rotation = unname(x$rotation))
  })
  list(id = id, formula = formula, dataset = data_name, REML = TRUE,
       objective = unname(REMLcrit(m)), theta = num(getME(m, "theta")), theta_names = I(names(getME(m, "theta"))),
       singular = isSingular(m), fit_warnings = fit$warnings, fit_messages = fit$messages, terms = terms)
}
repca <- list(
  sleepstudy = repca_case("sleepstudy", "Reaction ~ Days + (Days | Subject)", sleepstudy, "sleepstudy"),
  machines = repca_case("machines", "score ~ Machine + (0 + Machine | Worker)", Machines, "Machines"),
  cake_singular = repca_case("cake_singular", "angle ~ recipe * temperature + (recipe | replicate)", cake, "cake")
)
repca_note <- paste(
  "lme4::rePCA(m): per random-effects term, prcomp of the relative covariance factor: sdev are",
  "singular values of Lambda_i (unit: sigma), proportion_of_variance = sdev^2 / sum(sdev^2)",
  "(computed from sdev, not summary()'s 5-digit rounding). cake_singular is a boundary fit",
  "(one sdev is 0).")

## ---------------------------------------------------------------------------------------------
## f. broom.mixed
## ---------------------------------------------------------------------------------------------
broom_case <- function(id, m, formula, data_name, control_note) {
  cat("broom.mixed", id, "\n")
  tj <- function(expr) { r <- capture(expr); o <- table_json(r$value); o$warnings <- r$warnings; o }
  list(id = id, model = model_json(m, formula, data_name, control_note), class = class(m)[1],
       tidy_fixed = tj(tidy(m, effects = "fixed", conf.int = TRUE)),
       tidy_ran_pars = tj(tidy(m, effects = "ran_pars")),
       tidy_ran_vals = tj(tidy(m, effects = "ran_vals")),
       glance = tj(glance(m)))
}
broom <- local({
  f <- "Reaction ~ Days + (Days | Subject)"
  f2 <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
  list(
    sleepstudy_lme4 = broom_case("sleepstudy_lme4", lme4::lmer(as.formula(f), sleepstudy), f, "sleepstudy", "lme4::lmer, REML, default control"),
    sleepstudy_lmerTest = broom_case("sleepstudy_lmerTest", lmerTest::lmer(as.formula(f), sleepstudy), f, "sleepstudy", "lmerTest::lmer, REML, default control"),
    cbpp = broom_case("cbpp", glmer(as.formula(f2), cbpp, family = binomial, control = ctl_g_tight), f2, "cbpp", ctl_g_tight_note)
  )
})
broom_note <- paste(
  "broom.mixed::tidy(m, effects = 'fixed', conf.int = TRUE), tidy(m, effects = 'ran_pars'),",
  "tidy(m, effects = 'ran_vals'), glance(m); tables as {columns, nrow, data}. For an lme4 lmerMod,",
  "conf.int is Wald (normal quantiles); for an lmerTest fit tidy adds df and p.value and uses",
  "t quantiles with Satterthwaite df. ran_pars are on the sd/cor scale (scales = 'sdcor').")

## ---------------------------------------------------------------------------------------------
out <- list(
  note = "R reference values for issue 14, made by tests/reference/make_issue14_reference.R",
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  lmerTest = as.character(packageVersion("lmerTest")), pbkrtest = as.character(packageVersion("pbkrtest")),
                  emmeans = as.character(packageVersion("emmeans")), performance = as.character(packageVersion("performance")),
                  insight = as.character(packageVersion("insight")), broom.mixed = as.character(packageVersion("broom.mixed")),
                  glmmTMB = as.character(packageVersion("glmmTMB")), nlme = as.character(packageVersion("nlme")),
                  MASS = as.character(packageVersion("MASS")), Matrix = as.character(packageVersion("Matrix")),
                  jsonlite = as.character(packageVersion("jsonlite"))),
  glmer_nb = list(note = glmer_nb_note, cases = glmer_nb),
  emmeans = list(note = emmeans_note, machines = emm_machines, cake = emm_cake, cbpp = emm_cbpp),
  performance = list(note = performance_note, cases = perf),
  lmList = list(note = lmlist_note, cases = lmlists),
  rePCA = list(note = repca_note, cases = repca),
  broom_mixed = list(note = broom_note, cases = broom)
)
write_json(out, out_file, auto_unbox = TRUE, pretty = TRUE, digits = NA, na = "null", null = "null")
cat("wrote", out_file, "\n")
