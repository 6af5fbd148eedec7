# lme4's glmer fits of the GLMM cases of cases.json, refitted with a tight PIRLS tolerance.
#
# lme4's default tolPwrss (1e-7, relative change of the penalized deviance) stops PIRLS early
# enough that its Laplace criterion is off by ~5e-4 at cbpp's optimum, which moves the optimum by
# ~1.4e-3 standard errors and its finite-difference standard errors by ~1%. mixedfx iterates PIRLS
# to convergence; these fits (tolPwrss = 1e-12, bobyqa in both stages) are lme4 computing the same
# quantities to the same precision, so the tests can compare tightly.
#
#   Rscript tests/reference/make_glmm_tight.R tests/reference/glmm_tight.json
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
out <- if (length(args)) args[1] else "glmm_tight.json"
here <- dirname(normalizePath(out, mustWork = FALSE))
data(cbpp, grouseticks, VerbAgg, package = "lme4")
unorder <- function(d) { for (v in names(d)) if (is.ordered(d[[v]])) d[[v]] <- factor(as.character(d[[v]]), levels = levels(d[[v]])); d }
cases <- list(
  list(id = "cbpp_binomial", data = cbpp, formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", family = binomial, nAGQ = 1),
  list(id = "cbpp_binomial_agq", data = cbpp, formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", family = binomial, nAGQ = 9),
  list(id = "grouseticks_poisson", data = grouseticks, formula = "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", family = poisson, nAGQ = 1),
  list(id = "verbagg_binomial", data = VerbAgg, formula = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", family = binomial, nAGQ = 1),
  # the simulated data sets of glmm_small.json (CSV files next to this script)
  list(id = "poisson_offset", data = read.csv(file.path(here, "data/poisson_offset.csv")), formula = "deaths ~ uvb + (1 | region) + offset(log(expected))", family = poisson, nAGQ = 1),
  list(id = "probit_binary", data = read.csv(file.path(here, "data/probit_binary.csv")), formula = "y01 ~ x + (1 | g)", family = binomial(link = "probit"), nAGQ = 1),
  list(id = "cloglog_binary", data = read.csv(file.path(here, "data/probit_binary.csv")), formula = "y01 ~ x + (1 | g)", family = binomial(link = "cloglog"), nAGQ = 1),
  list(id = "logit_binary", data = read.csv(file.path(here, "data/probit_binary.csv")), formula = "y01 ~ x + (1 | g)", family = binomial, nAGQ = 1),
  list(id = "gamma_log", data = read.csv(file.path(here, "data/gamma_log.csv")), formula = "y ~ x + (1 | g)", family = Gamma(link = "log"), nAGQ = 1),
  list(id = "invgauss_log", data = read.csv(file.path(here, "data/invgauss_log.csv")), formula = "y ~ x + (1 | g)", family = inverse.gaussian(link = "log"), nAGQ = 1)
)
res <- lapply(cases, function(cs) {
  d <- unorder(cs$data)
  t0 <- proc.time()[["elapsed"]]
  m <- glmer(as.formula(cs$formula), d, family = cs$family, nAGQ = cs$nAGQ,
             control = glmerControl(tolPwrss = 1e-12, optimizer = c("bobyqa", "bobyqa"),
                                    optCtrl = list(maxfun = 1e5)))
  secs <- proc.time()[["elapsed"]] - t0
  obj <- -2 * as.numeric(logLik(m))
  if (cs$nAGQ > 1) {
    # lme4's logLik for nAGQ > 1 leaves out the saturated model's term: add it back
    fam <- family(m); y <- m@resp$y; n <- m@resp$n; wt <- m@resp$weights
    sat <- fam$aic(y, n, y, wt, 0)
    obj <- obj + sat
  }
  list(id = cs$id, formula = cs$formula, nAGQ = cs$nAGQ, tolPwrss = 1e-12,
       objective = obj, theta = unname(getME(m, "theta")),
       fixef = list(names = names(fixef(m)), estimate = unname(fixef(m)),
                    std_error = unname(sqrt(diag(as.matrix(vcov(m)))))),
       sigma = sigma(m),
       messages = m@optinfo$conv$lme4$messages, seconds = secs)
})
versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(list(versions = versions, fits = res), digits = NA, auto_unbox = TRUE, pretty = TRUE), out)
