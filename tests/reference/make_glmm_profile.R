suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
out_file <- if (length(args)) args[1] else "glmm_profile.json"
here <- dirname(normalizePath(out_file, mustWork = FALSE))
# Rscript tests/reference/make_glmm_profile.R tests/reference/glmm_profile.json
ctl <- glmerControl(tolPwrss = 1e-12, optimizer = c("bobyqa", "bobyqa"))
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial, control = ctl)
t0 <- proc.time()[["elapsed"]]
ci <- confint(g)
secs <- proc.time()[["elapsed"]] - t0
d <- read.csv(file.path(here, "data/poisson_offset.csv"))
gp <- glmer(deaths ~ uvb + (1 | region) + offset(log(expected)), d, poisson, control = ctl)
cp <- confint(gp)
print(ci); print(cp)
out <- list(
  note = "lme4 profile confint of glmer fits with tolPwrss = 1e-12 (PIRLS converged), made by tests/reference/make_glmm_profile.R",
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
  cbpp = list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", names = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]), seconds = secs),
  poisson_offset = list(formula = "deaths ~ uvb + (1 | region) + offset(log(expected))", names = rownames(cp), lower = unname(cp[, 1]), upper = unname(cp[, 2]))
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), out_file)
