# R reference values for mixedfx's tests (LMM inference, LRTs, bootstrap, small GLMMs).
# Usage (from the repo root):  Rscript tests/reference/make_r_reference.R tests/reference
# Needs Debian's r-base-core r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-jsonlite.
# Conventions follow /work/shared/reference/make_reference.R: data from lme4's own data sets,
# ordered factors turned into plain factors (level order kept), full-precision JSON.
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else "tests/reference"
only <- if (length(args) >= 2) args[-1] else c("lmm", "lrt", "boot", "glmm")
dir.create(file.path(outdir, "data"), recursive = TRUE, showWarnings = FALSE)

wjson <- function(x, name) {
  write_json(x, file.path(outdir, name), auto_unbox = TRUE, pretty = TRUE, digits = NA,
             na = "null", null = "null")
  cat("wrote", name, "\n")
}

load_data <- function(pkg, name) {
  e <- new.env(); data(list = name, package = pkg, envir = e); d <- as.data.frame(e[[name]])
  for (v in names(d)) if (is.ordered(d[[v]])) d[[v]] <- factor(as.character(d[[v]]), levels = levels(d[[v]]))
  d
}

# Evaluate expr, collecting warnings (as strings) instead of stopping; errors are recorded too.
capture <- function(expr) {
  warns <- character(0)
  val <- withCallingHandlers(
    tryCatch(expr, error = function(e) structure(list(msg = conditionMessage(e)), class = "captured_error")),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) invokeRestart("muffleMessage"))
  list(value = val, warnings = warns, error = if (inherits(val, "captured_error")) val$msg else NULL)
}

num <- function(x) { x <- as.numeric(x); x[!is.finite(x)] <- NA; I(x) }
mat_json <- function(m) {
  m <- as.matrix(m)
  list(rownames = I(rownames(m)), colnames = I(colnames(m)), values = unname(m))
}
df_records <- function(d) {
  for (v in names(d)) if (is.factor(d[[v]])) d[[v]] <- as.character(d[[v]])
  d
}
coef_table <- function(cf) {
  out <- list(names = I(rownames(cf)))
  for (cn in colnames(cf)) out[[cn]] <- num(cf[, cn])
  out
}
anova_table <- function(a) {
  a <- as.data.frame(a)
  if (nrow(a) == 0) return(list())
  lapply(seq_len(nrow(a)), function(i) {
    r <- list(term = rownames(a)[i])
    for (cn in colnames(a)) { v <- a[i, cn]; r[[cn]] <- if (is.finite(v)) as.numeric(v) else NA }
    r
  })
}
confint_json <- function(ci) {
  list(names = I(rownames(ci)), lower = num(ci[, 1]), upper = num(ci[, 2]),
       columns = I(colnames(ci)))
}

########################################################################################
# 1. LMM inference
########################################################################################
lmm_specs <- list(
  list(id = "sleepstudy", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)",
       newdata = function(d) data.frame(Subject = c(rep("999", 4), rep("308", 4)), Days = c(0:3, 0:3),
                                        stringsAsFactors = FALSE),
       newdata_note = "Subject '999' is a new level (4 rows), Subject '308' exists (4 rows)"),
  list(id = "penicillin", data = "Penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)",
       newdata = function(d) data.frame(plate = c("a", "b", "zz", "a"), sample = c("A", "B", "A", "ZZ"),
                                        stringsAsFactors = FALSE),
       newdata_note = "rows 1-2 existing plate/sample; row 3 new plate 'zz' with existing sample 'A'; row 4 existing plate 'a' with new sample 'ZZ'"),
  list(id = "pastes", data = "Pastes", formula = "strength ~ 1 + (1 | batch/cask)",
       newdata = function(d) data.frame(batch = c("A", "B", "ZZ", "A"), cask = c("a", "b", "a", "zz"),
                                        stringsAsFactors = FALSE),
       newdata_note = "rows 1-2 existing batch and cask:batch; row 3 new batch 'ZZ' (so new cask:batch 'a:ZZ'); row 4 existing batch 'A' with new cask:batch 'zz:A'"),
  list(id = "cake", data = "cake", formula = "angle ~ recipe * temperature + (1 | recipe:replicate)",
       newdata = function(d) {
         nd <- data.frame(recipe = c("A", "B", "C", "A"), replicate = c("1", "2", "99", "99"),
                          temperature = c("175", "205", "185", "225"), stringsAsFactors = FALSE)
         nd$recipe <- factor(nd$recipe, levels = levels(d$recipe))
         nd$temperature <- factor(nd$temperature, levels = levels(d$temperature))
         nd
       },
       newdata_note = "rows 1-2 existing recipe:replicate (A:1, B:2); rows 3-4 new replicate '99' (C:99, A:99)")
)

varcorr_list <- function(m) {
  vc <- VarCorr(m)
  lapply(names(vc), function(g) {
    s <- vc[[g]]
    list(group = g, names = I(colnames(s)), stddev = I(unname(attr(s, "stddev"))),
         corr = if (ncol(s) > 1) unname(as.matrix(attr(s, "correlation"))) else NULL)
  })
}

export_data <- function(d, name) {
  csv <- file.path(outdir, "data", paste0(name, ".csv"))
  write.csv(d, csv, row.names = FALSE, na = "")
  schema <- lapply(names(d), function(v) {
    x <- d[[v]]
    if (is.factor(x)) list(name = v, type = "factor", levels = levels(x))
    else if (is.numeric(x)) list(name = v, type = if (all(is.na(x) | x == round(x))) "integer" else "numeric")
    else list(name = v, type = "string")
  })
  write_json(list(name = name, nrow = nrow(d), columns = schema,
                  note = "lme4's data set; ordered factors turned into plain factors (level order kept; first level is the reference)"),
             file.path(outdir, "data", paste0(name, ".schema.json")), auto_unbox = TRUE, pretty = TRUE)
}

lmm_case <- function(sp) {
  cat("LMM", sp$id, "\n")
  d <- load_data("lme4", sp$data)
  export_data(d, sp$data)
  f <- as.formula(sp$formula)
  fit <- capture(lmerTest::lmer(f, data = d, REML = TRUE))
  m <- fit$value
  res <- list(id = sp$id, dataset = sp$data, data_csv = paste0("data/", sp$data, ".csv"),
              formula = sp$formula, REML = TRUE, nobs = nobs(m),
              ngroups = as.list(ngrps(m)), fit_warnings = I(fit$warnings))
  res$objective <- unname(REMLcrit(m))
  res$objective_kind <- "REML criterion (-2 REML log-likelihood)"
  res$theta <- I(unname(getME(m, "theta"))); res$theta_names <- I(names(getME(m, "theta")))
  res$sigma <- sigma(m)
  res$singular <- isSingular(m)
  res$varcorr <- varcorr_list(m)
  res$logLik <- as.numeric(logLik(m)); res$AIC <- AIC(m); res$BIC <- BIC(m)
  res$logLik_df <- attr(logLik(m), "df")
  res$deviance_REML_FALSE <- {
    r <- capture(deviance(m, REML = FALSE))
    if (is.null(r$error)) unname(r$value) else NULL
  }
  res$deviance_REML_FALSE_note <- paste("lme4 deviance(m, REML = FALSE) on the REML fit (= -2 * logLik(m, REML = FALSE)):",
    "the profiled ML deviance at the REML theta, ldL2 + n * (1 + log(2 * pi * pwrss / n)),",
    "i.e. -2 log-likelihood at (theta_REML, beta_REML, sigma^2 = pwrss / n); not the ML optimum (see ml$objective)")
  # fixed effects
  s_sat <- capture(summary(m))
  res$coef_satterthwaite <- coef_table(s_sat$value$coefficients)
  res$coef_satterthwaite_warnings <- I(s_sat$warnings)
  s_kr <- capture(summary(m, ddf = "Kenward-Roger"))
  res$coef_kenward_roger <- if (is.null(s_kr$error)) coef_table(s_kr$value$coefficients) else NULL
  res$coef_kenward_roger_warnings <- I(c(s_kr$warnings, s_kr$error))
  # anova (type III)
  a_sat <- capture(anova(m))
  res$anova_satterthwaite <- if (is.null(a_sat$error)) anova_table(a_sat$value) else list()
  res$anova_satterthwaite_warnings <- I(c(a_sat$warnings, a_sat$error))
  a_kr <- capture(anova(m, ddf = "Kenward-Roger"))
  res$anova_kenward_roger <- if (is.null(a_kr$error)) anova_table(a_kr$value) else list()
  res$anova_kenward_roger_warnings <- I(c(a_kr$warnings, a_kr$error))
  res$anova_type <- "III (lmerTest default)"
  # vcov
  res$vcov <- mat_json(vcov(m))
  v_kr <- capture(pbkrtest::vcovAdj(m))
  res$vcov_kenward_roger <- if (is.null(v_kr$error)) {
    vm <- as.matrix(v_kr$value); dimnames(vm) <- list(names(fixef(m)), names(fixef(m))); mat_json(vm)
  } else NULL
  res$vcov_kenward_roger_warnings <- I(c(v_kr$warnings, v_kr$error))
  # confidence intervals
  t0 <- proc.time()[["elapsed"]]
  ci_p <- capture(confint(m, level = 0.95))
  res$confint_profile_seconds <- proc.time()[["elapsed"]] - t0
  res$confint_profile <- if (is.null(ci_p$error)) confint_json(ci_p$value) else NULL
  res$confint_profile_warnings <- I(c(ci_p$warnings, ci_p$error))
  ci_w <- capture(confint(m, method = "Wald"))
  res$confint_wald <- if (is.null(ci_w$error)) confint_json(ci_w$value) else NULL
  res$confint_wald_warnings <- I(c(ci_w$warnings, ci_w$error))
  # predictions
  res$predict <- num(unname(predict(m)))
  res$predict_re_form_NA <- num(unname(predict(m, re.form = NA)))
  nd <- sp$newdata(d)
  p_new <- capture(predict(m, newdata = nd, allow.new.levels = TRUE))
  p_new0 <- capture(predict(m, newdata = nd, re.form = NA))
  res$newdata <- list(rows = df_records(nd), note = sp$newdata_note,
                      predict = if (is.null(p_new$error)) num(unname(p_new$value)) else NULL,
                      predict_warnings = I(c(p_new$warnings, p_new$error)),
                      predict_re_form_NA = if (is.null(p_new0$error)) num(unname(p_new0$value)) else NULL,
                      predict_re_form_NA_warnings = I(c(p_new0$warnings, p_new0$error)),
                      allow_new_levels = TRUE)
  # ML refit of the same model
  fml <- capture(lmerTest::lmer(f, data = d, REML = FALSE))
  mm <- fml$value
  cfm <- summary(mm)$coefficients
  res$ml <- list(
    objective = -2 * as.numeric(logLik(mm)),
    objective_kind = "deviance (-2 log-likelihood)",
    logLik = as.numeric(logLik(mm)), AIC = AIC(mm), BIC = BIC(mm),
    theta = I(unname(getME(mm, "theta"))), theta_names = I(names(getME(mm, "theta"))),
    sigma = sigma(mm), singular = isSingular(mm),
    fixef = list(names = I(names(fixef(mm))), estimate = I(unname(fixef(mm))),
                 std_error = I(unname(cfm[, "Std. Error"])),
                 df_satterthwaite = num(cfm[, "df"]), p_satterthwaite = num(cfm[, "Pr(>|t|)"])),
    varcorr = varcorr_list(mm),
    fit_warnings = I(fml$warnings))
  res
}

########################################################################################
# 2. LRTs
########################################################################################
lrt_specs <- list(
  list(id = "sleepstudy", data = "sleepstudy", f0 = "Reaction ~ 1 + (Days | Subject)",
       f1 = "Reaction ~ Days + (Days | Subject)"),
  list(id = "cake", data = "cake", f0 = "angle ~ recipe + temperature + (1 | recipe:replicate)",
       f1 = "angle ~ recipe * temperature + (1 | recipe:replicate)"),
  list(id = "penicillin", data = "Penicillin", f0 = "diameter ~ 1 + (1 | plate)",
       f1 = "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  list(id = "pastes", data = "Pastes", f0 = "strength ~ 1 + (1 | batch)",
       f1 = "strength ~ 1 + (1 | batch/cask)")
)
lrt_case <- function(sp) {
  cat("LRT", sp$id, "\n")
  d <- load_data("lme4", sp$data)
  m0 <- lme4::lmer(as.formula(sp$f0), data = d, REML = TRUE)
  m1 <- lme4::lmer(as.formula(sp$f1), data = d, REML = TRUE)
  a <- capture(anova(m0, m1))
  tab <- as.data.frame(a$value)
  rows <- lapply(seq_len(nrow(tab)), function(i) {
    r <- list(model = rownames(tab)[i],
              formula = if (rownames(tab)[i] == "m0") sp$f0 else sp$f1)
    for (cn in colnames(tab)) { v <- tab[i, cn]; r[[cn]] <- if (is.finite(v)) as.numeric(v) else NA }
    r
  })
  list(id = sp$id, dataset = sp$data, formula_m0 = sp$f0, formula_m1 = sp$f1,
       fitted_REML = TRUE, refit = TRUE,
       note = "anova(m0, m1) with lme4's default refit = TRUE: both REML fits are refitted by ML",
       columns = I(colnames(tab)), table = rows, warnings = I(a$warnings),
       m0_ml_objective = -2 * as.numeric(logLik(refitML(m0))),
       m1_ml_objective = -2 * as.numeric(logLik(refitML(m1))))
}

########################################################################################
# 3. Bootstrap (sleepstudy REML)
########################################################################################
boot_part <- function() {
  cat("bootstrap sleepstudy\n")
  d <- load_data("lme4", "sleepstudy")
  f <- "Reaction ~ Days + (Days | Subject)"
  m <- lme4::lmer(as.formula(f), data = d, REML = TRUE)
  t0 <- proc.time()[["elapsed"]]
  ci_b <- capture(confint(m, method = "boot", nsim = 1000, boot.type = "perc", seed = 1, level = 0.95))
  ci_b_sec <- proc.time()[["elapsed"]] - t0
  t0 <- proc.time()[["elapsed"]]
  bm <- capture(bootMer(m, function(x) c(fixef(x), sigma = sigma(x)), nsim = 1000, seed = 1))
  bm_sec <- proc.time()[["elapsed"]] - t0
  b <- bm$value
  tt <- b$t
  ci_p <- capture(confint(m, level = 0.95))
  list(dataset = "sleepstudy", formula = f, REML = TRUE,
       note = paste("Parametric bootstrap (lme4 bootMer defaults: type = 'parametric', use.u = FALSE).",
                    "R's random numbers cannot be reproduced outside R: compare intervals only",
                    "approximately (Monte Carlo error with nsim = 1000)."),
       confint_boot_perc = confint_json(ci_b$value),
       confint_boot_call = "confint(m, method = 'boot', nsim = 1000, boot.type = 'perc', seed = 1)",
       confint_boot_seconds = ci_b_sec,
       confint_boot_warnings = I(ci_b$warnings),
       bootmer_call = "bootMer(m, function(x) c(fixef(x), sigma = sigma(x)), nsim = 1000, seed = 1)",
       bootmer_seconds_1000 = bm_sec,
       bootmer_warnings = I(bm$warnings),
       bootmer_summary = list(names = I(colnames(tt)), t0 = num(b$t0),
                              mean = num(colMeans(tt, na.rm = TRUE)),
                              sd = num(apply(tt, 2, sd, na.rm = TRUE)),
                              q025 = num(apply(tt, 2, quantile, 0.025, na.rm = TRUE)),
                              q975 = num(apply(tt, 2, quantile, 0.975, na.rm = TRUE)),
                              n_failed = sum(!stats::complete.cases(tt))),
       confint_profile = confint_json(ci_p$value),
       confint_profile_warnings = I(ci_p$warnings),
       machine = paste(R.version$platform, Sys.info()[["machine"]]))
}

########################################################################################
# 4. Small simulated GLMMs
########################################################################################
rinvgauss_msh <- function(n, mu, lambda) {
  # Michael, Schucany & Haas (1976)
  nu <- rnorm(n); y <- nu^2
  x <- mu + mu^2 * y / (2 * lambda) - mu / (2 * lambda) * sqrt(4 * mu * lambda * y + mu^2 * y^2)
  ifelse(runif(n) <= mu / (mu + x), x, mu^2 / x)
}

make_glmm_data <- function() {
  ids <- function(prefix, k) sprintf("%s%02d", prefix, seq_len(k))
  # Poisson with offset: 30 regions x 10 rows
  set.seed(20240501)
  nreg <- 30; per <- 10
  region <- rep(ids("r", nreg), each = per)
  u <- rnorm(nreg, 0, 0.35)[rep(seq_len(nreg), each = per)]
  uvb <- round(rnorm(nreg * per, 0, 1), 4)
  expected <- round(runif(nreg * per, 2, 40), 3)
  deaths <- rpois(nreg * per, expected * exp(-0.1 - 0.25 * uvb + u))
  pois <- data.frame(deaths = deaths, uvb = uvb, expected = expected, region = region, stringsAsFactors = FALSE)
  # Binary (probit-generated): 40 groups x 10 rows
  set.seed(20240502)
  ng <- 40; per <- 10
  g <- rep(ids("g", ng), each = per)
  u <- rnorm(ng, 0, 0.7)[rep(seq_len(ng), each = per)]
  x <- round(rnorm(ng * per), 4)
  y01 <- as.integer(0.2 + 0.8 * x + u + rnorm(ng * per) > 0)
  probit <- data.frame(y01 = y01, x = x, g = g, stringsAsFactors = FALSE)
  # Gamma (log link): 30 groups x 10 rows, shape 5
  set.seed(20240503)
  ng <- 30; per <- 10
  g <- rep(ids("g", ng), each = per)
  u <- rnorm(ng, 0, 0.4)[rep(seq_len(ng), each = per)]
  x <- round(rnorm(ng * per), 4)
  mu <- exp(1 + 0.5 * x + u)
  y <- round(rgamma(ng * per, shape = 5, rate = 5 / mu), 6)
  gam <- data.frame(y = y, x = x, g = g, stringsAsFactors = FALSE)
  # Inverse Gaussian (log link): 30 groups x 10 rows, lambda = 20
  set.seed(20240504)
  g <- rep(ids("g", ng), each = per)
  u <- rnorm(ng, 0, 0.3)[rep(seq_len(ng), each = per)]
  x <- round(rnorm(ng * per), 4)
  mu <- exp(0.5 + 0.3 * x + u)
  y <- round(rinvgauss_msh(ng * per, mu, 20), 6)
  ig <- data.frame(y = y, x = x, g = g, stringsAsFactors = FALSE)
  list(poisson_offset = pois, probit_binary = probit, gamma_log = gam, invgauss_log = ig)
}

write_csv_schema <- function(d, name, note) {
  write.csv(d, file.path(outdir, "data", paste0(name, ".csv")), row.names = FALSE, na = "")
  schema <- lapply(names(d), function(v) {
    x <- d[[v]]
    if (is.numeric(x)) list(name = v, type = if (all(x == round(x))) "integer" else "numeric")
    else list(name = v, type = "string", n_unique = length(unique(x)))
  })
  write_json(list(name = name, nrow = nrow(d), columns = schema, note = note),
             file.path(outdir, "data", paste0(name, ".schema.json")), auto_unbox = TRUE, pretty = TRUE)
}

glmm_fit <- function(id, dataname, d, formula, family, nAGQ = 1, offset_expr = NULL) {
  cat("GLMM", id, "\n")
  fam <- family
  f <- as.formula(formula)
  t0 <- proc.time()[["elapsed"]]
  fit <- if (is.null(offset_expr)) capture(glmer(f, data = d, family = fam, nAGQ = nAGQ))
         else capture(glmer(f, data = d, family = fam, nAGQ = nAGQ, offset = log(expected)))
  elapsed <- proc.time()[["elapsed"]] - t0
  if (!is.null(fit$error)) return(list(id = id, dataset = dataname, formula = formula, error = fit$error,
                                       fit_warnings = I(fit$warnings)))
  m <- fit$value
  cf <- summary(m)$coefficients
  agq_shift <- 0
  if (nAGQ > 1) {
    y <- getME(m, "y"); pw <- weights(m, type = "prior")
    agq_shift <- if (fam$family == "binomial") -2 * sum(dbinom(round(y * pw), round(pw), y, log = TRUE))
                 else if (fam$family == "poisson") -2 * sum(dpois(y, y, log = TRUE)) else NA
  }
  re <- as.data.frame(ranef(m, condVar = TRUE))
  re <- head(re, 10)
  conv_msgs <- m@optinfo$conv$lme4$messages
  res <- list(
    id = id, dataset = dataname, formula = formula,
    offset = if (is.null(offset_expr)) NULL else offset_expr,
    family = fam$family, link = fam$link, nAGQ = nAGQ,
    nobs = nobs(m), ngroups = as.list(ngrps(m)),
    objective = -2 * as.numeric(logLik(m)) + agq_shift,
    objective_lme4_agq_scale = if (nAGQ > 1) -2 * as.numeric(logLik(m)) else NULL,
    agq_saturated_shift = if (nAGQ > 1) agq_shift else NULL,
    objective_kind = "-2 log-likelihood (Laplace/AGQ approximation)",
    logLik = as.numeric(logLik(m)), logLik_df = attr(logLik(m), "df"), AIC = AIC(m), BIC = BIC(m),
    deviance_lme4 = unname(deviance(m)),
    theta = I(unname(getME(m, "theta"))), theta_names = I(names(getME(m, "theta"))),
    sigma = sigma(m),
    singular = isSingular(m),
    fixef = list(names = I(names(fixef(m))), estimate = I(unname(fixef(m))),
                 std_error = I(unname(cf[, 2])), z = I(unname(cf[, 3])), p = I(unname(cf[, 4])),
                 columns = I(colnames(cf))),
    varcorr = lapply(names(VarCorr(m)), function(gn) {
      s <- VarCorr(m)[[gn]]; list(group = gn, names = I(colnames(s)), stddev = I(unname(attr(s, "stddev"))))
    }),
    ranef_head = list(group = I(as.character(re$grpvar)), term = I(as.character(re$term)),
                      level = I(as.character(re$grp)), condval = I(re$condval), condsd = I(re$condsd)),
    predict_link_head = num(head(unname(predict(m, type = "link")), 10)),
    predict_response_head = num(head(unname(predict(m, type = "response")), 10)),
    fitted_head = num(head(unname(fitted(m)), 10)),
    vcov = mat_json(vcov(m)),
    vcov_rx = {
      vr <- suppressWarnings(as.matrix(vcov(m, use.hessian = FALSE)))
      c(mat_json(vr), list(std_error = I(unname(sqrt(diag(vr))))))
    },
    hessian = {
      H <- m@optinfo$derivs$Hessian
      if (is.null(H)) NULL else list(parameters = I(c(names(getME(m, "theta")), names(fixef(m)))),
                                     values = unname(H), gradient = I(unname(m@optinfo$derivs$gradient)))
    },
    fit_warnings = I(fit$warnings),
    convergence_messages = I(if (is.null(conv_msgs)) character(0) else conv_msgs),
    optimizer_conv_code = m@optinfo$conv$opt,
    lme4_seconds = elapsed
  )
  list(res = res, model = m)
}

glmm_part <- function() {
  dd <- make_glmm_data()
  notes <- list(
    poisson_offset = "Simulated in R (set.seed(20240501)): 30 regions x 10 rows; deaths ~ Poisson(expected * exp(-0.1 - 0.25*uvb + u_region)), sd(u) = 0.35.",
    probit_binary = "Simulated in R (set.seed(20240502)): 40 groups x 10 rows; y01 = 1{0.2 + 0.8*x + u_g + N(0,1) > 0}, sd(u) = 0.7.",
    gamma_log = "Simulated in R (set.seed(20240503)): 30 groups x 10 rows; y ~ Gamma(shape 5, mean exp(1 + 0.5*x + u_g)), sd(u) = 0.4.",
    invgauss_log = "Simulated in R (set.seed(20240504)): 30 groups x 10 rows; y ~ InverseGaussian(mean exp(0.5 + 0.3*x + u_g), lambda 20), sd(u) = 0.3.")
  for (n in names(dd)) write_csv_schema(dd[[n]], n, notes[[n]])
  # read back from CSV so that R fits exactly what the Python tests read
  rd <- function(n) {
    d <- read.csv(file.path(outdir, "data", paste0(n, ".csv")), stringsAsFactors = FALSE)
    for (v in intersect(names(d), c("region", "g"))) d[[v]] <- as.character(d[[v]])
    d
  }
  pois <- rd("poisson_offset"); prob <- rd("probit_binary"); gam <- rd("gamma_log"); ig <- rd("invgauss_log")
  fits <- list()
  add <- function(r) { fits[[length(fits) + 1]] <<- r$res; invisible(r$model) }
  add(glmm_fit("poisson_offset", "poisson_offset", pois, "deaths ~ uvb + (1 | region)", poisson(),
               offset_expr = "log(expected)"))
  add(glmm_fit("probit_binary", "probit_binary", prob, "y01 ~ x + (1 | g)", binomial(link = "probit")))
  add(glmm_fit("cloglog_binary", "probit_binary", prob, "y01 ~ x + (1 | g)", binomial(link = "cloglog")))
  add(glmm_fit("logit_binary", "probit_binary", prob, "y01 ~ x + (1 | g)", binomial()))
  add(glmm_fit("logit_binary_agq9", "probit_binary", prob, "y01 ~ x + (1 | g)", binomial(), nAGQ = 9))
  add(glmm_fit("gamma_log", "gamma_log", gam, "y ~ x + (1 | g)", Gamma(link = "log")))
  add(glmm_fit("invgauss_log", "invgauss_log", ig, "y ~ x + (1 | g)", inverse.gaussian(link = "log")))
  add(glmm_fit("invgauss_log_on_gamma_data", "gamma_log", gam, "y ~ x + (1 | g)", inverse.gaussian(link = "log")))
  # cbpp
  cb <- load_data("lme4", "cbpp")
  export_data(cb, "cbpp")
  g <- add(glmm_fit("cbpp_binomial", "cbpp", cb, "cbind(incidence, size - incidence) ~ period + (1 | herd)", binomial()))
  g0 <- add(glmm_fit("cbpp_binomial_null", "cbpp", cb, "cbind(incidence, size - incidence) ~ 1 + (1 | herd)", binomial()))
  a <- capture(anova(g0, g))
  tab <- as.data.frame(a$value)
  cbpp_anova <- list(
    formula_g0 = "cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
    formula_g = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
    family = "binomial", columns = I(colnames(tab)),
    table = lapply(seq_len(nrow(tab)), function(i) {
      r <- list(model = rownames(tab)[i])
      for (cn in colnames(tab)) { v <- tab[i, cn]; r[[cn]] <- if (is.finite(v)) as.numeric(v) else NA }
      r
    }),
    warnings = I(a$warnings))
  list(note = paste("Simulated data sets are in data/*.csv (group ids are strings); fits were made on the CSV as read back by R.",
                    "cbpp is lme4's data set, exported to data/cbpp.csv (period and herd are factors,",
                    "period levels 1..4, the first is the reference)."),
       notes = list(
         objective = "objective = -2 * logLik(m) (Laplace / AGQ approximation that glmer minimises) plus, for nAGQ > 1, the saturated-model term that lme4 leaves out (0 for 0/1 data, so here objective == objective_lme4_agq_scale); deviance_lme4 is deviance(m), lme4's conditional deviance-type quantity, not -2 logLik",
         scale_families = paste("Gamma and inverse.gaussian (families with a scale): lme4's objective is",
           "ldL2 + sum(u^2) + family$aic(y, n, mu, wt, dev) with dev = sum of deviance residuals at the conditional mode, and R's family aic uses",
           "dispersion = dev / n and adds +2 (Gamma: -2*sum(dgamma(y, 1/disp, scale = mu*disp, log = TRUE)) + 2;",
           "inverse.gaussian: sum(wt)*(log(disp*2*pi) + 1) + 3*sum(log(y)*wt) + 2). sigma(m) is sqrt((sum of squared Pearson residuals + sum(u^2)) / n),",
           "i.e. devcomp sigmaML = sqrt(pwrss / n), computed after the fit, and VarCorr's sd is theta * sigma(m). logLik df counts sigma (4 here).",
           "The fixed-effect std errors use sigma(m) too. Verified numerically for gamma_log in R."),
         std_errors = paste("fixef$std_error and vcov are lme4's default vcov(m) for GLMMs, use.hessian = TRUE:",
           "the beta block of 2 * solve(H), H = lme4's finite-difference Hessian of the objective (-2 logLik) with respect to (theta, beta)",
           "(stored as hessian, parameters in that order; nAGQ = 0 fits would not have it). This accounts for theta uncertainty and is not",
           "sigma^2 * (RX'RX)^-1; the latter (the conditional-on-theta Wald vcov, vcov(m, use.hessian = FALSE)) is stored as vcov_rx",
           "(for scale families sigma = sigma(m); for binomial/poisson sigma = 1). They differ by up to ~10% for binomial/poisson; for the Gamma/inverse.gaussian intercept the Hessian-based SE is 1.6-1.85 times the RX-based one."),
         ranef_head = "first 10 rows of as.data.frame(ranef(m, condVar = TRUE)) (a single grouping factor and term in every fit here)",
         predict = "predict(m, type = 'link') includes the offset for poisson_offset; type = 'response' is exp/inverse-link of it; fitted_head = fitted(m)"),
       fits = fits, cbpp_anova = cbpp_anova)
}

########################################################################################
versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                 lmerTest = as.character(packageVersion("lmerTest")),
                 pbkrtest = as.character(packageVersion("pbkrtest")),
                 Matrix = as.character(packageVersion("Matrix")),
                 jsonlite = as.character(packageVersion("jsonlite")))

if ("lmm" %in% only)
  wjson(list(versions = versions, cases = lapply(lmm_specs, lmm_case)), "lmm_inference.json")
if ("lrt" %in% only)
  wjson(list(versions = versions, cases = lapply(lrt_specs, lrt_case)), "lmm_lrt.json")
if ("glmm" %in% only)
  wjson(c(list(versions = versions), glmm_part()), "glmm_small.json")
if ("boot" %in% only)
  wjson(c(list(versions = versions), boot_part()), "boot_sleepstudy.json")
