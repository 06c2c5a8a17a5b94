// The API client: same-origin cookie session, CSRF header on every change, problem+json
// errors turned into ApiError with the problem's type and detail.

let csrfToken = null;

/** An RFC 7807 problem from the gateway. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.type = problem.type || "";
    this.problem = problem;
  }

  /** The last segment of the problem type (`call-too-short`). */
  get kind() {
    return this.type.split("/").pop();
  }
}

/** Remember the CSRF token handed out with the session. */
export function setCsrf(token) {
  csrfToken = token || null;
}

/** Call the API; resolves to the JSON body (or null for 204). */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  let data = {};
  try {
    data = await response.json();
  } catch {
    data = { detail: response.statusText };
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401) document.dispatchEvent(new CustomEvent("signed-out"));
    throw error;
  }
  return data;
}

/** A query string from an object, skipping empty values. */
export function qs(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
