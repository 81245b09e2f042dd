-- Argo CD health of an EtcdCluster, from the conditions the operator writes.
-- Healthy: Ready. Degraded: Stalled (needs a person), or Degraded with nothing under way.
-- Progressing: anything else, including a spec the operator has not seen yet.
local hs = {}
local function find(conditions, type)
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to report"
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to act on the latest spec"
  return hs
end
local conditions = obj.status.conditions
local stalled = find(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
local ready = find(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
local reconciling = find(conditions, "Reconciling")
local degraded = find(conditions, "Degraded")
if degraded ~= nil and degraded.status == "True"
    and (reconciling == nil or reconciling.status ~= "True") then
  hs.status = "Degraded"
  hs.message = degraded.message
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = ready.message
end
return hs
