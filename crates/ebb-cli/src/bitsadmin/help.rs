//! `bitsadmin /?` and `/HELP`: BITSAdmin's usage list, of the commands ebb carries out.

/// The usage text, in BITSAdmin's layout.
pub const USAGE: &str = "\
USAGE: BITSADMIN [/RAWRETURN] [/WRAP | /NOWRAP] command
The following commands are available:

/HELP           Prints this help
/?              Prints this help
/LIST    [/ALLUSERS] [/VERBOSE]     List the jobs
/MONITOR [/ALLUSERS] [/REFRESH sec] Monitors the copy manager
/RESET   [/ALLUSERS]                Deletes all jobs in the manager
/TRANSFER <job name> [type] [/PRIORITY priority] [/DYNAMIC]
          <remote name> <local name>
    Transfers one of more files.
    [type] may be /DOWNLOAD, /UPLOAD or /UPLOAD-REPLY; default is download
    Multiple URL/file pairs may be specified.
    Unlike most commands, <job name> may only be a name and not a GUID.
/CREATE [type] <job name>           Creates a job
    [type] may be /DOWNLOAD, /UPLOAD, or /UPLOAD-REPLY; default is download
/INFO <job> [/VERBOSE]              Displays information about the job
/ADDFILE <job> <remote name> <local name>
    Adds a file to the job
/ADDFILESET <job> <textfile>        Adds multiple files to the job
    Each line of <textfile> lists a file's remote name and local name, separated
    by spaces. A line beginning with '#' is treated as a comment.
/ADDFILEWITHRANGES <job> <remote name> <local name> <range list>
    Like /ADDFILE, but BITS will read only selected ranges of the file
    range list: a comma-delimited list of offset and length pairs,
    separated by ':'; 'eof' as length means to the end of the file.
/REPLACEREMOTEPREFIX <job> <old prefix> <new prefix>
    All files whose remote name begins with <old prefix> are changed to use <new prefix>
/LISTFILES <job>                    Lists the files in the job
/SUSPEND <job>                      Suspends the job
/RESUME <job>                       Resumes the job
/CANCEL <job>                       Cancels the job
/COMPLETE <job>                     Completes the job

/GETTYPE <job>                      Retrieves the job type
/GETBYTESTOTAL <job>                Retrieves the size of the job
/GETBYTESTRANSFERRED <job>          Retrieves the number of bytes transferred
/GETFILESTOTAL <job>                Retrieves the number of files in the job
/GETFILESTRANSFERRED <job>          Retrieves the number of files transferred
/GETCREATIONTIME <job>              Retrieves the job creation time
/GETMODIFICATIONTIME <job>          Retrieves the last time the job was modified
/GETCOMPLETIONTIME <job>            Retrieves the time that the job finished
/GETSTATE <job>                     Retrieves the job state
/GETERROR <job>                     Retrieves detailed error information
/GETOWNER <job>                     Retrieves the job owner
/GETDISPLAYNAME <job>               Retrieves the job display name
/SETDISPLAYNAME <job> <display name> Sets the job display name
/GETDESCRIPTION <job>               Retrieves the job description
/SETDESCRIPTION <job> <description> Sets the job description
/GETPRIORITY    <job>               Retrieves the job priority
/SETPRIORITY    <job> <priority>    Sets the job priority
    priority: FOREGROUND, HIGH, NORMAL or LOW
/GETNOTIFYFLAGS <job>               Retrieves the notify flags
/SETNOTIFYFLAGS <job> <notify flags> Sets the notify flags
/GETNOTIFYCMDLINE <job>             Retrieves the notify command line
/SETNOTIFYCMDLINE <job> <program name> [program parameters]
    Sets a program to execute for notification, and optionally parameters.
    The program name and parameters can be NULL.
/GETMINRETRYDELAY <job>             Retrieves the retry delay in seconds
/SETMINRETRYDELAY <job> <retry delay> Sets the retry delay in seconds
/GETNOPROGRESSTIMEOUT <job>         Retrieves the no progress timeout in seconds
/SETNOPROGRESSTIMEOUT <job> <no progress timeout> Sets the no progress timeout in seconds
/GETMAXDOWNLOADTIME <job>           Retrieves the maximum download time in seconds
/SETMAXDOWNLOADTIME <job> <timeout> Sets the maximum download time in seconds
/GETERRORCOUNT <job>                Retrieves an error count for the job
/GETPROXYUSAGE <job>                Retrieves the proxy usage setting
/GETPROXYLIST <job>                 Retrieves the proxy list
/GETPROXYBYPASSLIST <job>           Retrieves the proxy bypass list
/SETPROXYSETTINGS <job> <usage>     Sets the proxy usage
    usage choices:
     PRECONFIG   - Use the system's proxy defaults
     NO_PROXY    - Do not use a proxy server
     OVERRIDE    - Use an explicit proxy list and bypass list.
                   Must be followed by a proxy list and a proxy bypass list.
                   NULL or \"\" may be used for an empty proxy bypass list.
     AUTODETECT  - Automatically detect proxy settings (as PRECONFIG here)
/SETCREDENTIALS <job> <target> <scheme> <username> <password>
    Adds credentials to a job.
    <target> may be either SERVER or PROXY
    <scheme> may be BASIC (the only scheme ebb sends)
/REMOVECREDENTIALS <job> <target> <scheme>
    Removes credentials from a job.
/GETREPLYFILENAME <job>             Gets the path of the file containing the server reply
/SETREPLYFILENAME <job> <path>      Sets the path of the file containing the server reply
/GETREPLYPROGRESS <job>             Gets the size and progress of the server reply
/GETREPLYDATA     <job>             Dumps the server's reply data in hex format
/GETSECURITYFLAGS <job>             Reports the security flags of the job
/SETSECURITYFLAGS <job> <value>     Sets the security flags of the job
    value: the BG_SSL_* and redirect bits, decimal or 0x hex
/GETCUSTOMHEADERS <job>             Gets the custom headers of the job
/SETCUSTOMHEADERS <job> <header1> <header2> <...>
    Adds custom headers to the job; NULL clears them

The following options are valid for most commands:
/RAWRETURN - Return data more suitable for parsing
/WRAP      - Wrap output around console (default)
/NOWRAP    - Don't wrap output around console

Jobs are named by display name or by {GUID}; local names are this platform's absolute paths.
The peer-caching, helper-token, ACL and client-certificate commands of BITSAdmin have no
counterpart in ebb: they are refused, never ignored.
";
